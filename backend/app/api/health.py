"""/api/health, /api/openapi.json and /api/docs."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template

from app.api.envelope import error_response, ok
from app.api.openapi import build_spec, documented
from app.extensions import db, stores
from app.schemas.health import HealthOut
from app.services.health import check_components

bp = Blueprint("meta", __name__, url_prefix="/api", template_folder="templates")


@bp.get("/health")
@documented(summary="Liveness and dependency status", tag="meta", response=HealthOut, errors=(503,),
            description="503 when any configured dependency is down; `data` has the status per component.")
def health():
    components = check_components(db.session, redis_answers=stores().redis_answers)
    healthy = all(status != "error" for status in components.values())
    data = {"status": "ok" if healthy else "degraded", "components": components}
    if healthy:
        return ok(data, message="Healthy.")
    return error_response(503, "SERVICE_UNAVAILABLE", "A dependency is unavailable.",
                          details={"components": components}, data=data)


@bp.get("/openapi.json")
@documented(summary="This OpenAPI document (raw, not enveloped)", tag="meta", raw_content="application/json")
def openapi_document():
    return jsonify(build_spec(current_app))


@bp.get("/docs")
@documented(summary="Human-readable API reference (HTML, not enveloped)", tag="meta", raw_content="text/html")
def docs():
    return render_template("api_docs.html", spec=build_spec(current_app))
