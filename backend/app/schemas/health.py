from marshmallow import Schema, fields


class HealthOut(Schema):
    status = fields.String(metadata={"enum": ["ok", "degraded"]})
    components = fields.Dict(keys=fields.String(), values=fields.String(),
                             metadata={"example": {"database": "ok", "redis": "not_configured"}})
