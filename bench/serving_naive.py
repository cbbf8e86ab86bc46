"""The baseline: a plain FastAPI server doing one forward pass per request (same model)."""

from __future__ import annotations

import os
from typing import Any

import torch
from fastapi import FastAPI

from conveyor.model_folder import load_model
from serving.engine.inference import classify_texts

app = FastAPI()
torch.set_num_threads(int(os.environ.get("CONVEYOR_TORCH_THREADS", "2")))
_loaded = load_model(os.environ["NAIVE_MODEL_FOLDER"], "classification")


@app.post("/classify")
def classify(body: dict[str, Any]) -> dict[str, Any]:
    return {"results": classify_texts(_loaded, [body["text"]], 1, 48)}
