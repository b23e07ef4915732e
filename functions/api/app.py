"""API function: API Gateway HTTP API (v2) events -> the FastAPI app (Mangum)."""
import gc

# Init allocates only long-lived objects (modules, the app, its middleware): the cyclic collector finds
# nothing to free there but walks them again and again while they pile up (~35 ms of the cold import).
# It resumes once init is done, and gc.freeze() keeps these objects out of every later collection.
_collecting = gc.isenabled()
gc.disable()
try:
    from mangum import Mangum

    from funnel.api.app import create_app
    from funnel.observability import log_metrics, tracer

    app = create_app()
    asgi_handler = Mangum(app, lifespan="off")
    # Made in init, so it is in the SnapStart snapshot: in Lambda the X-Ray SDK's import and patching
    # (~300 ms), locally and in tests Powertools finds tracing disabled and it costs nothing.
    tracer.make()

    @tracer.capture_lambda_handler
    @log_metrics
    def handler(event, context):
        return asgi_handler(event, context)
finally:
    gc.freeze()
    if _collecting:
        gc.enable()
