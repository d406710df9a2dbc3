"""The FastAPI application of the REST facade."""

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.jsonio import ExactJSONResponse
from api.routes import custom_flows, order_summaries, refunds, returns, sobjects


def create_app() -> FastAPI:
    app = FastAPI(
        title="Order Management money engine",
        summary="Salesforce Order Management payment actions on Prefect, behind Salesforce Connect paths.",
        version="0.1.0",
        default_response_class=ExactJSONResponse,
    )
    install_error_handlers(app)
    app.include_router(order_summaries.router)
    app.include_router(returns.router)
    app.include_router(custom_flows.router)
    app.include_router(refunds.router)
    app.include_router(sobjects.router)

    @app.get("/health", include_in_schema=False)
    def health():
        return {"status": "ok"}

    return app


app = create_app()
