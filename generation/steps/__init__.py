"""One module per pipeline step: build the prompt from the database, call the provider
(no transaction or lock held meanwhile), store the result idempotently, fire successors."""
