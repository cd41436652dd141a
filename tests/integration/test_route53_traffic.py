"""``Route53Traffic`` against a real Route 53 API (``moto_server``), beyond the shared contract.

What a failover record set looks like on the server (weighted CNAMEs or A records with
the center as set identifier), one hosted zone per zone name, and ``switch``: all the
weight to one center, every other to zero, in one atomic change batch, and back.
"""

from __future__ import annotations

import functools
import uuid
from pathlib import Path
from typing import Any

import pytest

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import dns
from cloudctl.model import topology
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers, identity, provisioning, recovery, replication_scrub, workloads
from cloudctl.services import requests as requests_service
from tests.integration import conftest, moto_servers


@pytest.fixture
def server(
    moto_servers_by_center: dict[str, moto_servers.MotoServer], source_center: str
) -> moto_servers.MotoServer:
    return moto_servers_by_center[source_center]


@pytest.fixture
def center_names(shipped_topology: topology.Topology) -> list[str]:
    return sorted(center.name for center in shipped_topology.centers)


def make_traffic(
    server: moto_servers.MotoServer, center_names: list[str], **options: Any
) -> dns.Route53Traffic:
    return dns.Route53Traffic(
        center=center_names[0],
        endpoint_url=server.endpoint_url,
        access_key=moto_servers.ACCESS_KEY,
        secret_key=moto_servers.SECRET_KEY,
        region=moto_servers.REGION,
        centers=center_names,
        clock=clocks.ManualClock(),
        **options,
    )


@pytest.fixture
def traffic(server: moto_servers.MotoServer, center_names: list[str]) -> dns.Route53Traffic:
    return make_traffic(server, center_names)


@pytest.fixture
def zone() -> str:
    return f"{uuid.uuid4().hex[:10]}.gov.example"


def record_sets(server: moto_servers.MotoServer, zone: str, name: str) -> list[dict[str, Any]]:
    raw = moto_servers.raw_client(server, "route53")
    zone_id = raw.list_hosted_zones_by_name(DNSName=zone)["HostedZones"][0]["Id"]
    return [
        record_set
        for record_set in raw.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
        if record_set["Name"] == f"{name}.{zone}."
    ]


def count_change_batches(traffic: dns.Route53Traffic) -> list[int]:
    """A list that grows by the number of changes in each ChangeResourceRecordSets call."""
    batches: list[int] = []

    def seen(params: dict[str, Any], **_: Any) -> None:
        batches.append(len(params["ChangeBatch"]["Changes"]))

    # Observes the driver's own botocore client: the only way to see how many batches it sends.
    traffic._client.meta.events.register("provide-client-params.route53.ChangeResourceRecordSets", seen)
    return batches


def test_a_failover_record_is_a_weighted_cname_to_the_centers_endpoint(
    traffic: dns.Route53Traffic, server: moto_servers.MotoServer, zone: str, center_names: list[str]
) -> None:
    traffic.upsert_record(zone, name="portal", target_center=center_names[1], weight=100, ttl_s=30)

    [record_set] = record_sets(server, zone, "portal")
    assert record_set["Type"] == "CNAME"
    assert record_set["SetIdentifier"] == center_names[1]
    assert (record_set["Weight"], record_set["TTL"]) == (100, 30)
    assert record_set["ResourceRecords"] == [{"Value": f"portal.{center_names[1]}.{zone}"}]


def test_with_an_address_map_a_failover_record_is_a_weighted_a_record(
    server: moto_servers.MotoServer, zone: str, center_names: list[str]
) -> None:
    addresses = {center: f"10.0.{index}.10" for index, center in enumerate(center_names)}
    traffic = make_traffic(server, center_names, center_addresses=addresses)

    traffic.upsert_record(zone, name="portal", target_center=center_names[2], weight=5)

    [record_set] = record_sets(server, zone, "portal")
    assert (record_set["Type"], record_set["SetIdentifier"]) == ("A", center_names[2])
    assert record_set["ResourceRecords"] == [{"Value": addresses[center_names[2]]}]
    assert traffic.get_record(zone, name="portal", target_center=center_names[2]).weight == 5


def test_a_record_points_at_the_workloads_own_address_when_given_one_and_switch_keeps_it(
    server: moto_servers.MotoServer, zone: str, center_names: list[str]
) -> None:
    addresses = {center: f"10.0.{index}.10" for index, center in enumerate(center_names)}
    traffic = make_traffic(server, center_names, center_addresses=addresses)

    made = traffic.upsert_record(zone, name="portal", target_center=center_names[2], address="10.80.3.7")
    traffic.upsert_record(zone, name="portal", target_center=center_names[1], weight=0)

    by_center = {r["SetIdentifier"]: r["ResourceRecords"] for r in record_sets(server, zone, "portal")}
    assert by_center[center_names[2]] == [{"Value": "10.80.3.7"}]
    assert by_center[center_names[1]] == [{"Value": addresses[center_names[1]]}]
    assert made.address == "10.80.3.7"
    assert traffic.get_record(zone, name="portal", target_center=center_names[2]).address == "10.80.3.7"
    assert traffic.get_record(zone, name="portal", target_center=center_names[1]).address is None
    traffic.switch(zone, name="portal", to_center=center_names[1])
    by_center = {r["SetIdentifier"]: r["ResourceRecords"] for r in record_sets(server, zone, "portal")}
    assert by_center[center_names[2]] == [{"Value": "10.80.3.7"}]
    with pytest.raises(errors.InvalidInput) as caught:
        traffic.upsert_record(zone, name="portal", target_center=center_names[2], address="10.80.3")
    assert caught.value.field == "address"


def test_a_cname_record_ignores_a_given_address(
    traffic: dns.Route53Traffic, server: moto_servers.MotoServer, zone: str, center_names: list[str]
) -> None:
    made = traffic.upsert_record(zone, name="portal", target_center=center_names[1], address="10.80.3.7")

    [record_set] = record_sets(server, zone, "portal")
    assert record_set["ResourceRecords"] == [{"Value": f"portal.{center_names[1]}.{zone}"}]
    assert made.address is None


def test_one_zone_name_gets_one_hosted_zone_across_driver_instances(
    server: moto_servers.MotoServer, zone: str, center_names: list[str]
) -> None:
    for center in center_names[:2]:
        make_traffic(server, center_names).upsert_record(zone, name="portal", target_center=center)

    zones = moto_servers.raw_client(server, "route53").list_hosted_zones_by_name(DNSName=zone)["HostedZones"]
    assert [hosted["Name"] for hosted in zones] == [f"{zone}."]
    assert len(make_traffic(server, center_names).list_records(zone, name="portal")) == 2


def test_switch_moves_all_traffic_to_one_center_in_one_change_batch_and_back(
    traffic: dns.Route53Traffic, zone: str, center_names: list[str]
) -> None:
    primary, standby, dr = center_names[:3]
    for center, weight in ((primary, 100), (standby, 100), (dr, 0)):
        traffic.upsert_record(zone, name="portal", target_center=center, weight=weight, ttl_s=20)
    batches = count_change_batches(traffic)

    failed_over = traffic.switch(zone, name="portal", to_center=dr)

    assert len(batches) == 1  # one atomic batch: every record and its companion
    weights = {record.target_center: record.weight for record in traffic.list_records(zone, name="portal")}
    assert weights == {primary: 0, standby: 0, dr: 100}
    assert traffic.list_records(zone, name="portal") == failed_over
    assert {record.ttl_s for record in failed_over} == {20}

    traffic.switch(zone, name="portal", to_center=primary)  # failback

    assert len(batches) == 2
    weights = {record.target_center: record.weight for record in traffic.list_records(zone, name="portal")}
    assert weights == {primary: 100, standby: 0, dr: 0}


def test_switch_to_a_center_without_a_record_changes_nothing(
    traffic: dns.Route53Traffic, zone: str, center_names: list[str]
) -> None:
    traffic.upsert_record(zone, name="portal", target_center=center_names[0], weight=100)
    before = traffic.list_records(zone)

    with pytest.raises(errors.NotFound):
        traffic.switch(zone, name="portal", to_center=center_names[1])
    with pytest.raises(errors.NotFound):
        traffic.switch(f"missing-{zone}", name="portal", to_center=center_names[1])

    assert traffic.list_records(zone) == before


def test_other_names_keep_their_weights_when_one_name_switches(
    traffic: dns.Route53Traffic, zone: str, center_names: list[str]
) -> None:
    upsert = functools.partial(traffic.upsert_record, zone, ttl_s=60)
    upsert(name="portal", target_center=center_names[0], weight=100)
    upsert(name="portal", target_center=center_names[1], weight=0)
    upsert(name="api", target_center=center_names[0], weight=100)
    upsert(name="api", target_center=center_names[1], weight=0)

    traffic.switch(zone, name="portal", to_center=center_names[1])

    assert [record.weight for record in traffic.list_records(zone, name="api")] == [100, 0]
    assert [record.weight for record in traffic.list_records(zone, name="portal")] == [0, 100]


# --- records of workloads, through the services ---------------------------------------------

OPS = identity.local_operator("sysadmin")
INSURANCE = identity.Principal(
    id="t:insurance",
    role="dept-admin",
    department="hrss-insurance",
    department_path=("qingdao", "hrss", "hrss-insurance"),
)
POLICE_TRAFFIC = identity.Principal(
    id="t:psb-traffic",
    role="dept-admin",
    department="psb-traffic",
    department_path=("qingdao", "psb", "psb-traffic"),
)


def ready_portal(ctx: ctx_module.Context, principal: identity.Principal) -> str:
    body = requests_service.RequestCreate(
        offering="vm.small", tier="gold", preferred_center="qd-a", name="portal"
    )
    request, _ = requests_service.submit(ctx, principal=principal, body=body)
    assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
    return request.workload_id or ""


def weights(server: moto_servers.MotoServer, zone: str, name: str) -> dict[str, int]:
    return {
        record_set["SetIdentifier"]: record_set["Weight"]
        for record_set in record_sets(server, zone, name)
        if record_set["Type"] == "CNAME"
    }


def test_two_departments_with_one_workload_name_have_their_own_records_until_deleted(
    tmp_path: Path, server: moto_servers.MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_servers.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_servers.SECRET_KEY)
    zone = f"{uuid.uuid4().hex[:10]}.gov.example"
    with conftest.real_backends_context(tmp_path, dns_endpoint=server.endpoint_url, traffic_zone=zone) as ctx:
        insurance = ready_portal(ctx, INSURANCE)
        police = ready_portal(ctx, POLICE_TRAFFIC)

        plan = recovery.plan_failover(
            ctx, principal=OPS, from_center="qd-a", planned=True, department="hrss-insurance"
        )
        assert recovery.execute(ctx, plan.run_id or "").state == "done"

        assert weights(server, zone, "portal.hrss-insurance") == {"qd-b": 100, "qd-a": 0}
        assert weights(server, zone, "portal.psb-traffic") == {}  # the other department's portal did not move
        assert record_sets(server, zone, "portal") == []  # no record keyed by the bare name

        plan = recovery.plan_failover(
            ctx, principal=OPS, from_center="qd-a", planned=True, department="psb-traffic"
        )
        assert recovery.execute(ctx, plan.run_id or "").state == "done"
        assert weights(server, zone, "portal.psb-traffic") == {"qd-b": 100, "qd-a": 0}

        workloads.delete(ctx, principal=INSURANCE, workload_id=insurance)
        provisioning.run_pending(ctx)
        deleted_names = deletes_sent(drivers.center_drivers(ctx, "mgmt").traffic._inner)
        report = replication_scrub.retire_deleted(ctx)

        assert report.records_removed == 2
        assert weights(server, zone, "portal.hrss-insurance") == {}
        assert record_sets(server, zone, "_cloudctl.portal.hrss-insurance") == []
        # Only the deleted workload's record sets were named in the DELETEs. (moto 5.2.5 then
        # removes every record set sharing a DELETE's SetIdentifier, whatever its name, unlike
        # Route 53, so the other portal's sets cannot be read back from this server here.)
        assert set(deleted_names) == {
            f"portal.hrss-insurance.{zone}",
            f"_cloudctl.portal.hrss-insurance.{zone}",
        }
        assert workloads.get(ctx, principal=POLICE_TRAFFIC, workload_id=police).state == "ready"
        assert replication_scrub.retire_deleted(ctx).records_removed == 0


def deletes_sent(traffic: dns.Route53Traffic) -> list[str]:
    """A list that grows by the name of every record set the driver asks the server to DELETE."""
    names: list[str] = []

    def seen(params: dict[str, Any], **_: Any) -> None:
        names.extend(
            change["ResourceRecordSet"]["Name"]
            for change in params["ChangeBatch"]["Changes"]
            if change["Action"] == "DELETE"
        )

    traffic._client.meta.events.register("provide-client-params.route53.ChangeResourceRecordSets", seen)
    return names
