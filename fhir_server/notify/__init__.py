"""Patient communication: the CommunicationRequest outbox, its dispatch, content and channels."""
