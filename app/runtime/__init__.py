"""What one running service keeps between requests: state, admission of pages, worker processes."""
