"""Helpers shared by the benchmarks: the emulator's clients, timing, medians.

Benchmarks only ever talk to the local emulator on 127.0.0.1.
"""
import os
import statistics
import subprocess
import threading
import time

import boto3

ENDPOINT = os.environ["AWS_ENDPOINT_URL"]
assert ENDPOINT.startswith("http://127.0.0.1:"), "benchmarks run against the local emulator only"
KW = dict(endpoint_url=ENDPOINT, region_name="us-west-2", aws_access_key_id="test", aws_secret_access_key="test")
r53 = boto3.client("route53", **KW)
elb = boto3.client("elbv2", **KW)
ec2 = boto3.client("ec2", **KW)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CUTOVER = os.path.join(ROOT, "target", "release", "cutover")
RUN_ID = f"{os.getpid()}{int(time.time()) % 100000}"


def run_bounded(cmd, limit=300, **kw):
    """Runs a command to its end (killed after `limit` seconds) and fails loudly if it fails.
    Not `subprocess.run(timeout=…)`: with a timeout, Python polls for the exit in sleeps of up to
    50 ms, which would add up to 50 ms to every timed run."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, **kw)
    watchdog = threading.Timer(limit, p.kill)
    watchdog.start()
    try:
        code = p.wait()
    finally:
        watchdog.cancel()
    if code != 0:
        raise subprocess.CalledProcessError(code, cmd)


def output_of(cmd, limit=120):
    """A command's stdout, bounded the same way."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    watchdog = threading.Timer(limit, p.kill)
    watchdog.start()
    try:
        out, _ = p.communicate()
    finally:
        watchdog.cancel()
    if p.returncode != 0:
        raise subprocess.CalledProcessError(p.returncode, cmd)
    return out


def timed(cmd, **kw):
    """Seconds one command takes, start to exit; fails loudly if it fails."""
    t0 = time.perf_counter()
    run_bounded(cmd, **kw)
    return time.perf_counter() - t0


def median(xs):
    return statistics.median(xs)


def weighted_alias(name, set_id, weight, dns):
    return {"Action": "UPSERT", "ResourceRecordSet": {
        "Name": name, "Type": "A", "SetIdentifier": set_id, "Weight": weight,
        "AliasTarget": {"HostedZoneId": "Z1H1FL5HABSF5", "DNSName": dns, "EvaluateTargetHealth": True}}}


def zone(name):
    return r53.create_hosted_zone(Name=name, CallerReference=f"bench-{name}")["HostedZone"]["Id"].split("/")[-1]


def set_records(zone_id, records, blue, green):
    changes = []
    for rec in records:
        changes.append(weighted_alias(rec, "blue", blue, "blue-1.us-west-2.elb.amazonaws.com"))
        changes.append(weighted_alias(rec, "green", green, "green-1.us-west-2.elb.amazonaws.com"))
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})


def profile(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path
