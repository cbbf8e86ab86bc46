"""What the tests and the benchmarks both stand up: tiny models, data slices, a live server,
closed-loop traffic, the interleaved comparison and the fault table.

Not shipped (the wheel holds the stages, serving, flows and the CLI only). ``tests/`` and
``bench/`` may import this package and anything they test; they never import each other.

- ``testbed.paths``: the checkout's folders (recipes, data, the E2E set).
- ``testbed.tiny_models``: tiny random BERT and Llama model folders, and their tokenizers.
- ``testbed.clinc``: real CLINC150 slices and varied texts.
- ``testbed.versions``: tiny classifier versions registered for the served deployment.
- ``testbed.live_server``: a real ``bentoml serve`` on 127.0.0.1 and a client for it.
- ``testbed.traffic``: closed-loop HTTP clients that record every answer.
- ``testbed.chat_traffic``: closed-loop clients of the OpenAI routes (varied E2E prompts,
  streams read to ``[DONE]`` or dropped on purpose) counted like ``testbed.traffic``.
- ``testbed.adapter_traffic``: LoRA versions on one base and chat traffic that checks answers.
- ``testbed.harness``: an arm and its baseline interleaved; medians and the ratio.
- ``testbed.flops``: model FLOPs and utilisation against a device's peak.
- ``testbed.fault_table``: the fault suite's rows and docs/reliability.md's table of them.
"""
