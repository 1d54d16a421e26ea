"""Incidents: the model and its pure lifecycle, the reports they write, and the store they live in."""
