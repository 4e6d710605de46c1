"""Orders and customer credit (microservices.io): a process manager coordinates two aggregates."""
