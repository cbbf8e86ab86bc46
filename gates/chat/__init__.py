"""Gates for chat recipes (``data.format: chat``): a model judged on what it writes.

Greedy answers on a seeded sample of test prompts, scored against every reference (BLEU,
ROUGE-L), by the recipe's task check (``gates.generation.task_check``: a task plug-in of
:mod:`gates.plugins`, exact match or a regex) and the golden suite; the perplexity of the
references. The champion answers the same prompts.
"""
