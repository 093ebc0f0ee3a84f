"""The embedded local stack: a KRaft Kafka broker and two MariaDB servers on loopback."""
