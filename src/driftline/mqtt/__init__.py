"""Sensors that speak MQTT: the gateway from an MQTT broker to the raw topic, and a publisher.

``routing`` turns one MQTT message into its Kafka record (pure); ``client`` builds the MQTT
client from settings; ``runtime`` runs the gateway's loop (receive, publish to Kafka, only then
acknowledge); ``publisher`` publishes simulated readings over MQTT.
"""
