"""The bare FastAPI endpoint ``bench ingress`` compares the product's ingress with: read the
body, answer 200 — nothing else. Served like ``synapseops api`` (uvicorn, one worker, no
access log) on ``SYNAPSEOPS_API_PORT``.

    SYNAPSEOPS_API_PORT=8000 python -m bench.ingress_bare
"""

from __future__ import annotations

import os

import uvicorn
from fastapi import FastAPI, Request

app = FastAPI()


@app.post("/webhooks/stripe")
async def accept(request: Request) -> dict[str, object]:
    body = await request.body()
    return {"received": True, "bytes": len(body)}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    port = int(os.environ["SYNAPSEOPS_API_PORT"])
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
