"""Katib Suggestion adapter: serves Kubeflow Katib's ``api.v1.beta1.Suggestion`` with nasrl's
agents behind it, as a gRPC client of the nasrl controller (``python -m katib_adapter``)."""
