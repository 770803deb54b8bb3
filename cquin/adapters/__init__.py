"""Adapters: plugins that read record exports (canonical CSV, FHIR, CSDS, ...) into the canonical dataset."""
