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

    app = create_app()
    handler = Mangum(app, lifespan="off")
finally:
    gc.freeze()
    if _collecting:
        gc.enable()
