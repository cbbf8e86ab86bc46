"""Gates for text recipes (``data.format: text``): a model scored over a text split.

Classifiers by accuracy, macro-F1, calibration and per-class F1; causal language models by
perplexity (with a few greedy samples shown). One forward pass per test example, the
candidate and its champion on the same split in the same run.
"""
