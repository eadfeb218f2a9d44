#!/usr/bin/env bash
# Makes sure the Mosquitto the MQTT gateway's tests use is installed (Debian's mosquitto, also
# started privately by the tests with their own config) and answers at 127.0.0.1:1883
# (starting the machine's broker if it is stopped).
set -euo pipefail
up() { (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; }
if ! command -v mosquitto >/dev/null 2>&1 || ! command -v mosquitto_pub >/dev/null 2>&1; then
  echo "installing Debian's mosquitto and mosquitto-clients" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
fi
up && exit 0
echo "Mosquitto is not answering at 127.0.0.1:1883; starting it" >&2
if [ -f /etc/mosquitto/mosquitto.conf ]; then
  mkdir -p /run/mosquitto /var/log/mosquitto /var/lib/mosquitto
  chown mosquitto: /run/mosquitto /var/log/mosquitto /var/lib/mosquitto 2>/dev/null || true
  mosquitto -d -c /etc/mosquitto/mosquitto.conf
else
  mosquitto -d -p 1883
fi
for _ in $(seq 1 40); do up && exit 0; sleep 0.25; done
echo "Mosquitto is not reachable at 127.0.0.1:1883" >&2
exit 1
