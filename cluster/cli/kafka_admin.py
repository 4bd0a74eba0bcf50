"""The topic verbs of `brook` over the Kafka protocol (`--bootstrap-server`), as Kafka's tools and rpk.

`KafkaAdmin` answers the few `ControllerClient` calls the topic handlers make (create, describe,
delete) with the same protobuf replies, built from confluent-kafka's AdminClient (CreateTopics,
Metadata, DescribeConfigs, DeleteTopics sent to any broker), so one handler serves both transports.
What the Kafka protocol does not carry is left at its zero value: leader epochs, unclean-election
counts. Controller-only verbs (quorum, brokers, reassignment, ...) keep needing the controllers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from brookpb import admin_pb2 as apb
from cluster.cli.groups import _kafka_error
from cluster.errors import BrookError, ErrorCode

MIN_ISR_KEY = "min.insync.replicas"


class KafkaAdmin:
    def __init__(self, bootstrap: str, timeout_s: float, security: Mapping[str, str] | None = None) -> None:
        from confluent_kafka.admin import AdminClient

        from cluster.cli.kafka_client import CONNECTION_ERRORS, client_config

        self.bootstrap, self.timeout_s = bootstrap, timeout_s
        self.client = CONNECTION_ERRORS.track(AdminClient(client_config(bootstrap, timeout_s, security)))

    def close(self) -> None:
        pass

    @staticmethod
    def _code(e: Exception) -> tuple[int, str]:
        err: Any = e.args[0] if e.args else None
        code = err.code() if hasattr(err, "code") else int(ErrorCode.unknown_server_error)
        text = err.str() if hasattr(err, "str") else str(e)
        return (code if code >= 0 else int(ErrorCode.unknown_server_error)), " ".join(str(text).split())

    def create_topics(self, requests: Sequence[apb.CreateTopicRequest],
                      validate_only: bool = False) -> apb.CreateTopicsResponse:
        from confluent_kafka.admin import NewTopic

        topics = [NewTopic(r.name, num_partitions=r.partitions, replication_factor=r.replication_factor,
                           config=dict(r.configs)) for r in requests]
        futures = self.client.create_topics(topics, validate_only=validate_only, request_timeout=self.timeout_s,
                                            operation_timeout=self.timeout_s)
        reply = apb.CreateTopicsResponse()
        for r in requests:
            try:
                self._wait_raw(futures[r.name])
                reply.results.add(name=r.name)
            except Exception as e:
                code, text = self._code(e)
                reply.results.add(name=r.name, error_code=code, error_message=text)
        return reply

    def delete_topics(self, names: Sequence[str]) -> apb.DeleteTopicsResponse:
        futures = self.client.delete_topics(list(names), request_timeout=self.timeout_s,
                                            operation_timeout=self.timeout_s)
        reply = apb.DeleteTopicsResponse()
        for name in names:
            try:
                self._wait_raw(futures[name])
                reply.results.add(name=name)
            except Exception as e:
                code, text = self._code(e)
                reply.results.add(name=name, error_code=code, error_message=text)
        return reply

    def _wait_raw(self, future: Any) -> Any:
        from concurrent.futures import TimeoutError as FutureTimeout

        try:
            return future.result(timeout=self.timeout_s + 5)
        except FutureTimeout:
            raise BrookError(f"no answer from the brokers at {self.bootstrap} within {self.timeout_s:g}s",
                             ErrorCode.request_timed_out) from None

    def describe_topics(self, names: Sequence[str], include_internal: bool = False) -> apb.DescribeTopicsResponse:
        from confluent_kafka.admin import ConfigResource

        try:
            metadata = self.client.list_topics(timeout=self.timeout_s)
        except Exception as e:
            raise _kafka_error(e, f"no metadata from the brokers at {self.bootstrap}") from None
        live = set(metadata.brokers)
        wanted = list(names) or sorted(n for n in metadata.topics if include_internal or not n.startswith("__"))
        reply = apb.DescribeTopicsResponse(min_insync_replicas_default=self._min_isr_default(sorted(live)))
        found = [n for n in wanted if n in metadata.topics and metadata.topics[n].error is None]
        configs: dict[str, Any] = {}
        if found:
            futures = self.client.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, n) for n in found],
                                                   request_timeout=self.timeout_s)
            for resource, future in futures.items():
                try:
                    configs[resource.name] = self._wait_raw(future)
                except Exception:
                    configs[resource.name] = {}
        for name in wanted:
            t = metadata.topics.get(name)
            if t is None or t.error is not None:
                code = int(ErrorCode.unknown_topic_or_partition) if t is None else self._code(Exception(t.error))[0]
                reply.topics.add(name=name, error_code=code)
                continue
            info = reply.topics.add(name=name)
            for index, p in sorted(t.partitions.items()):
                info.partitions.add(partition=index, leader=p.leader, replicas=list(p.replicas), isr=list(p.isrs),
                                    offline_replicas=[r for r in p.replicas if r not in live])
            for key, entry in sorted(configs.get(name, {}).items()):
                if not entry.is_default and entry.value is not None:
                    info.configs.add(name=key, value=entry.value)
        return reply

    def _min_isr_default(self, brokers: list[int]) -> int:
        from confluent_kafka.admin import ConfigResource

        if not brokers:
            return 1
        resource = ConfigResource(ConfigResource.Type.BROKER, str(brokers[0]))
        try:
            entries = self._wait_raw(self.client.describe_configs([resource], request_timeout=self.timeout_s)[resource])
            return int(entries[MIN_ISR_KEY].value)
        except Exception:
            return 1

    # -- topics alter / configs describe|alter ------------------------------------------------------------

    SOURCES = {"DYNAMIC_TOPIC_CONFIG": "topic", "DEFAULT_CONFIG": "default", "STATIC_BROKER_CONFIG": "static",
               "DYNAMIC_BROKER_CONFIG": "dynamic", "DYNAMIC_DEFAULT_BROKER_CONFIG": "cluster"}

    def create_partitions(self, name: str, count: int) -> apb.CreatePartitionsResponse:
        from confluent_kafka.admin import NewPartitions

        futures = self.client.create_partitions([NewPartitions(name, count)], request_timeout=self.timeout_s,
                                                operation_timeout=self.timeout_s)
        reply = apb.CreatePartitionsResponse()
        try:
            self._wait_raw(futures[name])
            reply.results.add(name=name)
        except BrookError:
            raise
        except Exception as e:
            self._raise_if_local(e)
            code, text = self._code(e)
            reply.results.add(name=name, error_code=code, error_message=text)
        return reply

    def _raise_if_local(self, e: Exception) -> None:
        """A librdkafka-local failure (negative code: transport, timeout) is about the connection, not
        the resource: one line naming the addresses."""
        err: Any = e.args[0] if e.args else None
        if hasattr(err, "code") and err.code() < 0:
            raise _kafka_error(e, f"no answer from the brokers at {self.bootstrap}") from None

    def _check_broker(self, name: str) -> None:
        """librdkafka sends a BROKER resource's request to that broker, and waits out the timeout for an
        unknown one: say so at once."""
        try:
            live = sorted(self.client.list_topics(timeout=self.timeout_s).brokers)
        except Exception as e:
            raise _kafka_error(e, f"no metadata from the brokers at {self.bootstrap}") from None
        if not name.isdigit() or int(name) not in live:
            raise BrookError(f"no live broker with id {name} (live: {', '.join(map(str, live))})",
                             ErrorCode.broker_not_available)

    @staticmethod
    def _source_name(source: Any) -> str:
        from confluent_kafka.admin import ConfigSource

        try:
            return ConfigSource(int(getattr(source, "value", source))).name
        except (ValueError, TypeError):
            return str(source)

    @staticmethod
    def _resource(resource_type: int, name: str) -> Any:
        from confluent_kafka.admin import ConfigResource

        if resource_type == 2:
            return ConfigResource(ConfigResource.Type.TOPIC, name)
        # The cluster-wide broker defaults are the BROKER resource with an empty name, as in Kafka.
        return ConfigResource(ConfigResource.Type.BROKER, name)

    def describe_configs(self, resources: Sequence[tuple[int, str]]) -> apb.DescribeConfigsResponse:
        reply = apb.DescribeConfigsResponse()
        for resource_type, name in resources:
            out = reply.results.add(resource=apb.ConfigResource(type=resource_type, name=name))
            resource = self._resource(resource_type, name)
            if resource_type != 2 and name:
                self._check_broker(name)
            try:
                entries = self._wait_raw(self.client.describe_configs([resource],
                                                                      request_timeout=self.timeout_s)[resource])
            except BrookError:
                raise
            except Exception as e:
                self._raise_if_local(e)
                out.error_code, out.error_message = self._code(e)
                continue
            for key, entry in sorted(entries.items()):
                source = self._source_name(entry.source)
                out.entries.add(name=key, value=entry.value or "", is_default=bool(entry.is_default),
                                source=self.SOURCES.get(source, source.lower()))
        return reply

    def alter_configs(self, resource_type: int, name: str, ops: Sequence[tuple[str, str | None]],
                      validate_only: bool = False) -> apb.AlterConfigsResponse:
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry

        resource = self._resource(resource_type, name)
        if resource_type != 2 and name:
            self._check_broker(name)
        for key, value in ops:
            resource.add_incremental_config(ConfigEntry(
                key, value, incremental_operation=AlterConfigOpType.SET if value is not None
                else AlterConfigOpType.DELETE))
        reply = apb.AlterConfigsResponse()
        out = reply.results.add(resource=apb.ConfigResource(type=resource_type, name=name))
        futures = self.client.incremental_alter_configs([resource], validate_only=validate_only,
                                                        request_timeout=self.timeout_s)
        try:
            self._wait_raw(futures[resource])
        except BrookError:
            raise
        except Exception as e:
            self._raise_if_local(e)
            out.error_code, out.error_message = self._code(e)
        return reply
