"""Patient communication: the CommunicationRequest outbox, its Celery dispatch, content and channels."""
