"""Upstream identity providers: fetching their documents safely, and (to come) one adapter per kind."""
