"""Policy decisions (Cedar, evaluated in-process with cedarpy)."""
