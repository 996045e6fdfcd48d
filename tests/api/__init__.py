"""Tests of the Python API (Client, AsyncClient, types) and of `paxosctl decided --follow`."""
