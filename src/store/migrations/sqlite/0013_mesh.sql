-- The mesh (docs/mesh.md): direct calls leave mesh.call / mesh.reply / mesh.refused
-- events in the audit trail; `spine mesh log` and /v1/mesh/calls read them by kind.

CREATE INDEX audit_kind_idx ON audit_events (kind, seq);
