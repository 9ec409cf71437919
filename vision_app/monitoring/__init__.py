"""Monitoring that reaches people: zones and counting lines per source, events over MQTT, Prometheus metrics.

Everything here sits on the sink side of the flow (after the pipeline, per source, in frame order): the
zone step turns tracked detections into events and draws the zones; sinks hand events to the MQTT
publisher and results to the metrics, neither of which ever blocks the frame loop. `Monitoring` (hub.py)
is what the commands and windows use. paho-mqtt and prometheus-client are imported only when used.
"""
