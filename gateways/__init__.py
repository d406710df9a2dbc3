"""Payment gateways: a plain-data contract (``contract``) and adapters beside it."""
