"""API function: API Gateway HTTP API (v2) events -> the FastAPI app (Mangum)."""
from mangum import Mangum

from funnel.api.app import create_app

app = create_app()
handler = Mangum(app, lifespan="off")
