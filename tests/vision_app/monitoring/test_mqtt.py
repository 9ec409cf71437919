"""The MQTT publisher against a real Mosquitto broker on 127.0.0.1: clear errors at start, a bounded queue
whose drops are counted, the last will, Home Assistant discovery and TLS with a private CA."""
from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.mosquitto import Mosquitto, Subscriber
from vision_app.config import load_config
from vision_app.errors import MonitoringError
from vision_app.monitoring.config import MqttConfig
from vision_app.monitoring.hub import Monitoring
from vision_app.monitoring.mqtt import MqttPublisher

REPO = Path(__file__).resolve().parents[3]


def fast(**kw: object) -> MqttConfig:
    return MqttConfig(**{"reconnect_min_s": 1, "reconnect_max_s": 1, "connect_timeout_s": 5.0, **kw})  # type: ignore[arg-type]


def test_refused_login_and_unreachable_broker_are_clear_errors_at_start(tmp_path: Path) -> None:
    b = Mosquitto(tmp_path, users={"ann": "s3cret"}).start()
    try:
        with pytest.raises(MonitoringError, match="refused the login of user 'ann': Not authorized; check the "
                                                  "user and password") as e:
            MqttPublisher.connect(b.url("ann", "wrong"), fast())
        assert "wrong" not in str(e.value)  # the password is never shown
        with pytest.raises(MonitoringError, match="refused the login of an anonymous client"):
            MqttPublisher.connect(b.url(), fast())
        pub = MqttPublisher.connect(b.url(), fast(username="ann", password="s3cret"))  # user from the config
        assert pub.connected
        pub.close()
    finally:
        b.stop()
    with pytest.raises(MonitoringError, match=r"cannot reach the MQTT broker mqtt://127.0.0.1:\d+: .*refused"):
        MqttPublisher.connect(b.url(), fast())  # stopped: nothing listens there any more


def test_a_port_that_never_answers_times_out_with_a_clear_error() -> None:
    with socket.socket() as silent:  # accepts the TCP connection, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        with pytest.raises(MonitoringError, match="did not answer the connection within 1 s"):
            MqttPublisher.connect(f"mqtt://127.0.0.1:{port}", fast(connect_timeout_s=1.0))


def test_the_queue_is_bounded_drops_the_oldest_and_says_so(broker: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    sub = Subscriber(broker.port, "q/#")
    pub = MqttPublisher.connect(broker.url(), fast(prefix="q", queue_size=5))
    try:
        broker.stop()
        sub.wait_for(lambda: not pub.connected, 10, "the publisher to notice the broker is gone")
        with caplog.at_level(logging.WARNING, "vision_app.monitoring.mqtt"):
            for i in range(12):
                pub.publish("q/cam/events", str(i))  # returns at once: the broker is down
        assert pub.stats()["dropped"] == 7 and pub.stats()["queued"] == 5
        assert "queue full (5 messages" in caplog.text and "dropped the oldest" in caplog.text
        broker.start()
        sub.wait_for(lambda: len(sub.on("q/cam/events")) == 5, 20, "the 5 queued events after the restart")
        assert sub.on("q/cam/events") == [str(i).encode() for i in range(7, 12)]
        assert pub.stats()["reconnects"] == 1
    finally:
        pub.close()
        sub.close()


def test_last_will_marks_the_app_offline_when_it_dies(broker: Mosquitto) -> None:
    sub = Subscriber(broker.port, "vision-app/available")
    app = subprocess.Popen([sys.executable, str(REPO / "main.py"), "run", "--source", "test:", "-q", "--mqtt",
                            broker.url()], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        sub.wait_for(lambda: sub.on("vision-app/available")[-1:] == [b"online"], 60, "online")
        os.kill(app.pid, signal.SIGKILL)  # no goodbye: only the broker can tell
        sub.wait_for(lambda: sub.on("vision-app/available")[-1:] == [b"offline"], 20, "the last will")
    finally:
        app.kill()
        app.wait(10)
        sub.close()
    late = Subscriber(broker.port, "vision-app/available", client_id="late")  # retained for newcomers
    late.wait_for(lambda: late.messages, 10, "the retained availability")
    assert late.messages == [("vision-app/available", b"offline", True)]
    late.close()


ZONES = """
[[monitoring.sources]]
match = "*"
name = "door"
[[monitoring.sources.zones]]
name = "porch"
points = [[0, 0], [1, 0], [1, 1], [0, 1]]
classes = ["person", "dog"]
"""


@pytest.mark.parametrize("enabled", [True, False])
def test_home_assistant_discovery_only_when_asked(broker: Mosquitto, tmp_path: Path, enabled: bool) -> None:
    p = tmp_path / "c.toml"
    p.write_text(ZONES + f"[mqtt]\nha_discovery = {str(enabled).lower()}\n")
    early = Subscriber(broker.port, "vision-app/#", client_id=f"early-{enabled}")
    mon = Monitoring.start(load_config(p), broker.url())
    try:
        mon.attach("camera:0", ("person", "dog", "car"))
        assert mon.mqtt is not None
        mon.mqtt.retain("vision-app/marker", "sent after the discovery configs")
        early.wait_for(lambda: early.on("vision-app/marker"), 10, "the marker")
        late = Subscriber(broker.port, "#", client_id=f"late-{enabled}")  # gets what is retained
        late.wait_for(lambda: late.on("vision-app/marker"), 10, "the retained marker")
    finally:
        mon.close()
        early.close()
    configs = {t: p for t, p, retained in late.messages if t.startswith("homeassistant/") and retained}
    late.close()
    if not enabled:
        assert not configs
        return
    assert sorted(configs) == ["homeassistant/binary_sensor/vision-app/door_dog/config",
                               "homeassistant/binary_sensor/vision-app/door_person/config",
                               "homeassistant/sensor/vision-app/door_fps/config"]
    person = json.loads(configs["homeassistant/binary_sensor/vision-app/door_person/config"])
    assert person["device_class"] == "occupancy" and person["state_topic"] == "vision-app/door/person/occupancy"
    assert person["availability_topic"] == "vision-app/available"
    assert json.loads(configs["homeassistant/sensor/vision-app/door_fps/config"])["state_topic"] == "vision-app/door/fps"


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False).sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return paths


def test_mqtts_with_a_private_ca(tmp_path: Path) -> None:
    ca, cert, key = _certificates(tmp_path)
    b = Mosquitto(tmp_path, tls=(cert, key)).start()
    try:
        url = f"mqtts://127.0.0.1:{b.tls_port}"
        with pytest.raises(MonitoringError, match="TLS handshake with the MQTT broker mqtts://127.0.0.1.* failed"):
            MqttPublisher.connect(url, fast())  # the system CAs do not know this broker
        sub = Subscriber(b.port, "vision-app/#")
        pub = MqttPublisher.connect(url, fast(ca_file=str(ca)))
        pub.publish("vision-app/x/events", "over TLS")
        sub.wait_for(lambda: sub.on("vision-app/x/events") == [b"over TLS"], 10, "the event sent over TLS")
        pub.close()
        sub.close()
    finally:
        b.stop()
