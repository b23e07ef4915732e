"""The floor the API function's cold start is measured against (benchmarks/platform_bench.py):
FastAPI + Mangum with one route, nothing of Funnel."""
from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()


@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


handler = Mangum(app, lifespan="off")
