"""Fleet-level decisions shared by the API, the autoscaler feed and ``farm sim``."""
