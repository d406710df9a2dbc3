"""The FastAPI application of the REST facade."""

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse

from api.deps import current_caller
from api.errors import install_error_handlers
from api.jsonio import ExactJSONResponse
from api.limits import BodySizeLimit
from api.openapi import install_openapi
from api.routes import (
    custom_flows, order_payment_summaries, order_summaries, query, refunds, returns, sobjects, standard_actions, versions,
)
from api.settings import get_api_settings


def create_app() -> FastAPI:
    settings = get_api_settings()
    app = FastAPI(
        title="Order Management money engine",
        summary="Salesforce Order Management payment actions on Prefect, behind Salesforce Connect paths.",
        version="0.1.0",
        default_response_class=ExactJSONResponse,
        docs_url=None, redoc_url=None, openapi_url=None,  # served below, behind the token unless public_docs
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    docs_guard = [] if settings.public_docs else [Depends(current_caller)]

    @app.get("/openapi.json", include_in_schema=False, dependencies=docs_guard)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=docs_guard)
    def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - API")
    routers = [order_summaries.router, order_payment_summaries.router, returns.router, custom_flows.router, refunds.router,
               sobjects.router,
               standard_actions.router, query.router, versions.router]
    for router in routers:
        app.include_router(router)

    @app.get("/health", include_in_schema=False)
    def health():
        return {"status": "ok"}

    install_openapi(app, [route for router in routers for route in router.routes])
    return app


app = create_app()
