"""`boothline serve`: the studio service. Accounts and API keys, a credits ledger, a job table over Prefect
flow runs, and the `/v1` HTTP API over the same stages the pipeline runs."""
