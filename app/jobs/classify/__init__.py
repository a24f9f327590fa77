"""Classification jobs (POST /jobs): store, engines, runner, rq tasks and their manager."""
