"""Delivery channels: one Sender per configured channel (email, SMS, voice)."""
