"""Speed at the API floor, through the kit's proxy with AWS-like round trips.

Every timed command talks to a latency proxy (`CUTOVER_BENCH_SLOW`: 30..50 ms a call, concurrent
calls overlapping, a Route53 change PENDING until its GetChange) in front of the same moto server
the set-up uses without latency. The contenders alternate run by run; every ratio is of medians
measured side by side in this one run. The proxy logs each call (start, when moto got it, when
moto answered, end), so moto's own time — the union of the intervals moto was busy with a run's
calls — is reported apart, and each ratio is also given with it taken out of both sides.

  floor         warm boto3 clients doing the least a rollback needs, the way a person would script
                it: read the record sets (and the state item) → write → confirm (GetChange, and the
                abort of the state item, beside it); for ALB the ModifyListener answer is the read-back
  rollback      `cutover rollback` on: one Route53 route; Route53 + ALB; one route with [state]
  set / scale   `cutover set green=25` on 100 records in a zone of 3000 other records vs one record
                in a zone as big; 50 ALB rules vs 1 rule
  calls         the calls a staged rollout makes (Route53 + ALB, an alarm gate, [state]) against
                the fewest it can make, counted per operation
  zones         `cutover set` on seven zones: 21 Route53 calls it would like to make at once
  roles         `cutover rollback` of a route whose zone is in another account (`role_arn`) vs
                the floor with the same AssumeRole first
  peak          the most Route53 calls cutover started in any one second, over every run above
"""
import bisect
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import boto3

from common import CUTOVER, KW, RUN_ID, ec2, elb, profile, r53, run_bounded, weighted_alias

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
# CUTOVER_BENCH_SECTIONS=rollback,set,zones,calls,roles picks some of them (the peak covers what ran).
SECTIONS = os.environ.get("CUTOVER_BENCH_SECTIONS", "rollback,set,zones,calls,roles").split(",")
SLOW = os.environ["CUTOVER_BENCH_SLOW"]
LOG = os.environ["CUTOVER_BENCH_CALL_LOG"]
assert SLOW.startswith("http://127.0.0.1:"), "benchmarks run against the local emulator only"
SLOW_KW = dict(KW, endpoint_url=SLOW)
ENV = dict(os.environ, AWS_ENDPOINT_URL=SLOW)
tmp = tempfile.mkdtemp()
ddb = boto3.client("dynamodb", **KW)


# ---- the proxy's call log -----------------------------------------------------------------------
def log_offset():
    return os.path.getsize(LOG) if os.path.exists(LOG) else 0


def calls_since(offset):
    with open(LOG) as f:
        f.seek(offset)
        return [json.loads(line) for line in f if line.strip()]


def moto_ms(calls):
    """How long moto was busy with these calls: the union of their [reached, answered] spans."""
    spans = sorted((c["forwarded_ms"], c["answered_ms"]) for c in calls
                   if c.get("forwarded_ms") is not None and c.get("answered_ms") is not None)
    total, end = 0.0, None
    for a, b in spans:
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


PEAK = {"per_second": 0, "where": ""}


def note_peak(calls, where):
    """The most Route53 calls started within any one second (a sliding window)."""
    starts = sorted(c["start_ms"] for c in calls if c["service"] == "route53")
    for i, s in enumerate(starts):
        n = bisect.bisect_left(starts, s + 1000.0) - i
        if n > PEAK["per_second"]:
            PEAK.update(per_second=n, where=where)


class Sample:
    """Wall and moto milliseconds of one contender's runs."""

    def __init__(self, name):
        self.name, self.wall, self.moto, self.calls = name, [], [], []

    def add(self, wall_s, calls):
        self.wall.append(wall_s * 1000)
        self.moto.append(moto_ms(calls))
        self.calls.append(len(calls))

    def median(self):
        return statistics.median(self.wall)

    def median_less_moto(self):
        return statistics.median(w - m for w, m in zip(self.wall, self.moto))

    def line(self):
        return (f"  {self.name:<44} {self.median():7.1f} ms   moto {statistics.median(self.moto):6.1f} ms"
                f"   {statistics.median(self.calls):4.0f} calls")


def cutover(sample, prof, *args, where=None):
    offset = log_offset()
    t0 = time.perf_counter()
    run_bounded([CUTOVER, "-p", prof, *args], env=ENV)
    wall = time.perf_counter() - t0
    calls = calls_since(offset)
    if os.environ.get("CUTOVER_BENCH_DEBUG") and calls:
        span = max(c["end_ms"] for c in calls) - min(c["start_ms"] for c in calls)
        print(f"    {sample.name}: wall {wall * 1000:.0f} ms, calls span {span:.0f} ms", file=sys.stderr)
    sample.add(wall, calls)
    note_peak(calls, where or sample.name)
    return calls


def scripted(sample, fn):
    offset = log_offset()
    t0 = time.perf_counter()
    fn()
    sample.add(time.perf_counter() - t0, calls_since(offset))


def ratio(a, b, goal):
    raw, less = a.median() / b.median(), a.median_less_moto() / b.median_less_moto()
    ok = "ok" if less <= goal else "OVER"
    return f"  {a.name} / {b.name}: {raw:.3f} (moto's time taken out: {less:.3f}; goal <= {goal})  {ok}"


# ---- fixtures ---------------------------------------------------------------------------------
vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
           for i, az in enumerate(["us-west-2a", "us-west-2b"], start=1)]
lbs = {s: elb.create_load_balancer(Name=f"f{s}{RUN_ID}", Subnets=subnets)["LoadBalancers"][0] for s in ("blue", "green")}
DNS = {s: lb["DNSName"] for s, lb in lbs.items()}
ZONE_OF_ELB = lbs["blue"]["CanonicalHostedZoneId"]
tg = {s: elb.create_target_group(Name=f"f{s}{RUN_ID}", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")
      ["TargetGroups"][0]["TargetGroupArn"] for s in ("blue", "green")}


def alias(name, side, weight):
    c = weighted_alias(name, side, weight, DNS[side])
    c["ResourceRecordSet"]["AliasTarget"]["HostedZoneId"] = ZONE_OF_ELB
    return c


def new_zone(name, others=0):
    zid = r53.create_hosted_zone(Name=name, CallerReference=f"floor-{name}")["HostedZone"]["Id"].split("/")[-1]
    # Production-sized: other records around the ones a profile names (an A record each).
    for first in range(0, others, 500):
        r53.change_resource_record_sets(HostedZoneId=zid, ChangeBatch={"Changes": [
            {"Action": "CREATE", "ResourceRecordSet": {"Name": f"svc{i:04d}.{name}", "Type": "A", "TTL": 300,
                                                      "ResourceRecords": [{"Value": "10.1.0.1"}]}}
            for i in range(first, min(first + 500, others))]})
    return zid


def split_records(zid, records, blue, green):
    r53.change_resource_record_sets(HostedZoneId=zid, ChangeBatch={"Changes": [
        c for r in records for c in (alias(r, "blue", blue), alias(r, "green", green))]})


def forward(blue, green):
    return [{"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": tg["blue"], "Weight": blue}, {"TargetGroupArn": tg["green"], "Weight": green}]}}]


front = elb.create_load_balancer(Name=f"ffront{RUN_ID}", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
listener = elb.create_listener(LoadBalancerArn=front, Protocol="HTTP", Port=80,
                               DefaultActions=forward(50, 50))["Listeners"][0]["ListenerArn"]


def route53_toml(zone, record):
    return f'[[route53]]\nzone = "{zone}"\nrecord = "{record}"\nblue = "blue"\ngreen = "green"\n'


ALB_TOML = f'[[alb]]\nlistener = "{listener}"\nblue = "{tg["blue"]}"\ngreen = "{tg["green"]}"\n'

# One zone for the rollback profiles, given by id (as a production profile would, to skip the lookup).
name = f"floor{RUN_ID}.bench."
zid = new_zone(name)
one_rec, mixed_rec, state_rec, roll_rec, none_rec = (f"{p}.{name}" for p in ("one", "mixed", "state", "roll", "none"))
split_records(zid, [one_rec, mixed_rec, state_rec, roll_rec, none_rec], 50, 50)
table = f"floor-state-{RUN_ID}"
prof_one = profile(os.path.join(tmp, "one.toml"), route53_toml(zid, one_rec))
prof_mixed = profile(os.path.join(tmp, "mixed.toml"), route53_toml(zid, mixed_rec) + ALB_TOML)
prof_state = profile(os.path.join(tmp, "state.toml"), route53_toml(zid, state_rec) +
                     f'[rollout]\nstages = [50, 100]\nbake = "1h"\ndns_ttl = "0s"\n[state]\ntable = "{table}"\n')
subprocess.run([CUTOVER, "-p", prof_state, "state", "init"], check=True, stdout=subprocess.DEVNULL)
# The same table, a profile with no rollout ever recorded: traffic moved by hand, rolled back `--to`.
prof_none = profile(os.path.join(tmp, "none.toml"), route53_toml(zid, none_rec) +
                    f'[rollout]\nstages = [50, 100]\nbake = "1h"\ndns_ttl = "0s"\n[state]\ntable = "{table}"\n')


# ---- the floor: warm boto3 doing what a rollback must -----------------------------------------
slow_r53 = boto3.client("route53", **SLOW_KW)
slow_elb = boto3.client("elbv2", **SLOW_KW)
slow_ddb = boto3.client("dynamodb", **SLOW_KW)
# Warm: credentials resolved, connections open.
slow_r53.get_change(Id=r53.change_resource_record_sets(HostedZoneId=zid, ChangeBatch={"Changes": [
    alias(one_rec, "blue", 50)]})["ChangeInfo"]["Id"])
slow_elb.describe_listeners(ListenerArns=[listener])
slow_ddb.describe_table(TableName=table)


def floor_route53(record):
    slow_r53.list_resource_record_sets(HostedZoneId=zid, StartRecordName=record, StartRecordType="A", MaxItems="2")
    change = slow_r53.change_resource_record_sets(HostedZoneId=zid, ChangeBatch={"Changes": [
        alias(record, "blue", 100), alias(record, "green", 0)]})["ChangeInfo"]["Id"]
    while slow_r53.get_change(Id=change)["ChangeInfo"]["Status"] != "INSYNC":
        time.sleep(0.05)


def floor_alb():
    slow_elb.describe_listeners(ListenerArns=[listener])
    slow_elb.modify_listener(ListenerArn=listener, DefaultActions=forward(100, 0))


def together(*fns):
    threads = [threading.Thread(target=f) for f in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def floor_state(rec=None):
    state_rec_ = rec or state_rec
    key = {"pk": {"S": "state"}, "sk": {"S": "STATE"}}
    together(lambda: slow_r53.list_resource_record_sets(HostedZoneId=zid, StartRecordName=state_rec_,
                                                        StartRecordType="A", MaxItems="2"),
             lambda: slow_ddb.get_item(TableName=table, Key=key, ConsistentRead=True))
    change = slow_r53.change_resource_record_sets(HostedZoneId=zid, ChangeBatch={"Changes": [
        alias(state_rec_, "blue", 100), alias(state_rec_, "green", 0)]})["ChangeInfo"]["Id"]

    def confirm():
        while slow_r53.get_change(Id=change)["ChangeInfo"]["Status"] != "INSYNC":
            time.sleep(0.05)

    # The abort and its audit entry, beside the confirmation (the bench's own attribute: the
    # state item cutover reads is left alone).
    together(confirm,
             lambda: slow_ddb.update_item(TableName=table, Key=key, UpdateExpression="SET #f = :s",
                                          ExpressionAttributeNames={"#f": "floor"},
                                          ExpressionAttributeValues={":s": {"S": "aborted"}}),
             lambda: slow_ddb.put_item(TableName=table, Item={"pk": {"S": "state"}, "sk": {"S": f"floor#{time.time()}"},
                                                              "doc": {"S": "{}"}}))


def start_state_rollout():
    """A rollout of the [state] profile at its first stage (50 %), through the fast endpoint."""
    split_records(zid, [state_rec], 100, 0)
    subprocess.run([CUTOVER, "-p", prof_state, "advance", "--to", "green"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


# ---- rollback vs the floor ----------------------------------------------------------------------
s = {k: Sample(n) for k, n in [
    ("one", "rollback, one Route53 route"), ("one_floor", "floor, one Route53 route"),
    ("mixed", "rollback, Route53 + ALB"), ("mixed_floor", "floor, Route53 + ALB"),
    ("state", "rollback, one route with [state]"), ("state_floor", "floor, one route with [state]"),
    ("none", "rollback, [state], no rollout recorded"), ("none_floor", "floor, [state], no rollout recorded")]}
for i in range(runs if "rollback" in SECTIONS else 0):
    split_records(zid, [one_rec], 50, 50)
    cutover(s["one"], prof_one, "rollback", "--to", "blue", "--yes")
    split_records(zid, [one_rec], 50, 50)
    scripted(s["one_floor"], lambda: floor_route53(one_rec))

    split_records(zid, [mixed_rec], 50, 50)
    elb.modify_listener(ListenerArn=listener, DefaultActions=forward(50, 50))
    cutover(s["mixed"], prof_mixed, "rollback", "--to", "blue", "--yes")
    split_records(zid, [mixed_rec], 50, 50)
    elb.modify_listener(ListenerArn=listener, DefaultActions=forward(50, 50))
    scripted(s["mixed_floor"], lambda: together(lambda: floor_route53(mixed_rec), floor_alb))

    start_state_rollout()
    cutover(s["state"], prof_state, "rollback", "--yes")
    split_records(zid, [state_rec], 50, 50)
    scripted(s["state_floor"], floor_state)

    split_records(zid, [none_rec], 50, 50)
    cutover(s["none"], prof_none, "rollback", "--to", "blue", "--yes")
    split_records(zid, [none_rec], 50, 50)
    scripted(s["none_floor"], lambda: floor_state(none_rec))

if "rollback" in SECTIONS:
    print(f"rollback vs the API floor, {runs} runs each, alternated, 30..50 ms a call:")
    for k in s:
        print(s[k].line())
    print(ratio(s["one"], s["one_floor"], 1.15))
    print(ratio(s["mixed"], s["mixed_floor"], 1.15))
    print(ratio(s["state"], s["state_floor"], 1.3))
    print(ratio(s["none"], s["none_floor"], 1.3))

# ---- set on many routes vs one ----------------------------------------------------------------
def set_section():
    big, small = f"big{RUN_ID}.bench.", f"small{RUN_ID}.bench."
    big_id, small_id = new_zone(big, 3000), new_zone(small, 3000)
    many = [f"api{i:03d}.{big}" for i in range(100)]
    prof_many = profile(os.path.join(tmp, "many.toml"), "".join(route53_toml(big_id, r) for r in many))
    prof_single = profile(os.path.join(tmp, "single.toml"), route53_toml(small_id, f"api.{small}"))

    n_rules = 50


    def alb_with_rules(n, tag):
        lb = elb.create_load_balancer(Name=f"r{tag}{RUN_ID}", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
        lst = elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80,
                                  DefaultActions=forward(1, 0))["Listeners"][0]["ListenerArn"]
        rules = [elb.create_rule(ListenerArn=lst, Priority=i + 1, Actions=forward(100, 0),
                                 Conditions=[{"Field": "path-pattern", "Values": [f"/r{i}/*"]}])["Rules"][0]["RuleArn"]
                 for i in range(n)]
        text = "".join(f'[[alb]]\nlistener = "{lst}"\nrule = "{r}"\nblue = "{tg["blue"]}"\ngreen = "{tg["green"]}"\n'
                       for r in rules)
        return rules, profile(os.path.join(tmp, f"alb{n}.toml"), text)


    rules_many, prof_rules = alb_with_rules(n_rules, "m")
    rules_one, prof_rule = alb_with_rules(1, "o")
    sc = {k: Sample(n) for k, n in [
        ("many", "set, 100 records in a 3000-record zone"), ("single", "set, 1 record in a 3000-record zone"),
        ("rules", f"set, {n_rules} ALB rules"), ("rule", "set, 1 ALB rule")]}
    for i in range(runs):
        split_records(big_id, many, 100, 0)
        cutover(sc["many"], prof_many, "set", "green=25", "--yes")
        split_records(small_id, [f"api.{small}"], 100, 0)
        cutover(sc["single"], prof_single, "set", "green=25", "--yes")
        for r in rules_many:
            elb.modify_rule(RuleArn=r, Actions=forward(100, 0))
        cutover(sc["rules"], prof_rules, "set", "green=25", "--yes")
        elb.modify_rule(RuleArn=rules_one[0], Actions=forward(100, 0))
        cutover(sc["rule"], prof_rule, "set", "green=25", "--yes")

    print(f"\nset green=25 on many routes vs one, {runs} runs each, alternated:")
    for k in sc:
        print(sc[k].line())
    print(ratio(sc["many"], sc["single"], 1.2))
    print(ratio(sc["rules"], sc["rule"], 2.0))


if "set" in SECTIONS:
    set_section()

# ---- Route53's rate: a set on seven zones wants 21 calls at once ----------------------------
def zones_section():
    def weighted(record, set_id, weight):
        return {"Action": "UPSERT", "ResourceRecordSet": {
            "Name": record, "Type": "A", "SetIdentifier": set_id, "Weight": weight, "TTL": 60,
            "ResourceRecords": [{"Value": "10.9.0.1" if set_id == "blue" else "10.9.0.2"}]}}

    routes = []
    for i in range(7):
        zone = f"z{i}{RUN_ID}.bench."
        routes.append((new_zone(zone), f"api.{zone}"))
    prof = profile(os.path.join(tmp, "zones.toml"), "".join(route53_toml(z, r) for z, r in routes))
    sample = Sample("set, 7 zones (21 Route53 calls)")
    for i in range(runs):
        for z, r in routes:
            r53.change_resource_record_sets(HostedZoneId=z, ChangeBatch={"Changes": [
                weighted(r, "blue", 100), weighted(r, "green", 0)]})
        cutover(sample, prof, "set", "green=25", "--yes")
    print(f"\nRoute53's 5 requests a second, {runs} runs:")
    print(sample.line())


if "zones" in SECTIONS:
    zones_section()


# ---- calls per rollout vs the fewest ----------------------------------------------------------
def calls_section():
    cw = boto3.client("cloudwatch", **KW)
    alarm = f"floor-green-{RUN_ID}"
    cw.put_metric_alarm(AlarmName=alarm, MetricName=f"m{RUN_ID}", Namespace="bench", Statistic="Sum", Period=60,
                        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    cw.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="bench")
    roll_table = f"floor-roll-{RUN_ID}"
    STAGES, BAKE, POLL = [10, 25, 50, 100], 2.0, 0.5
    prof_roll = profile(os.path.join(tmp, "roll.toml"), route53_toml(zid, roll_rec) + ALB_TOML +
                        f'[rollout]\nstages = {STAGES}\nbake = "{BAKE:g}s"\npoll = "{POLL * 1000:g}ms"\n'
                        f'dns_ttl = "0s"\n[state]\ntable = "{roll_table}"\n'
                        f'[[gate]]\ntype = "alarm"\nalarms = ["{alarm}"]\n')
    subprocess.run([CUTOVER, "-p", prof_roll, "state", "init"], check=True, stdout=subprocess.DEVNULL)
    split_records(zid, [roll_rec], 100, 0)
    elb.modify_listener(ListenerArn=listener, DefaultActions=forward(100, 0))
    rollout = Sample("rollout, Route53 + ALB, alarm gate, [state]")
    calls = cutover(rollout, prof_roll, "rollout", "--to", "green")
    made = collections.Counter(c["operation"] for c in calls)
    stages = len(STAGES)
    # The fewest calls this rollout can make, each justified:
    #   before the first write: the routes read once (ListResourceRecordSets, DescribeListeners, the
    #   listener's owner tags: DescribeTags), the state item read (GetItem), the alarms checked to
    #   exist (DescribeAlarms), who is acting asked once for the audit trail (GetCallerIdentity);
    #   per poll of a bake (bake / poll of them a stage): the gates read (one DescribeAlarms for every
    #   alarm) and the state item read beside them (GetItem: a rollback or a pause is seen within a
    #   poll, not at the next stage);
    #   per stage: one change batch and one GetChange (the change is PENDING until then), one
    #   ModifyListener (its answer is the read-back), the listener described before it (ELB has no
    #   conditional write: only a read notices a hand edit; Route53's compare-and-swap needs none);
    #   state writes (PutItem, each conditional): the rollout begun, per stage the write claimed,
    #   the stage recorded and its bake's start recorded (`status` shows it), the rollout ended;
    #   audit entries (PutItem): begun, each stage, ended.
    polls = stages * int(BAKE / POLL)
    fewest = collections.Counter({
        "ListResourceRecordSets": 1, "DescribeListeners": 1 + stages, "DescribeTags": 1,
        "GetItem": 1 + polls, "GetCallerIdentity": 1, "DescribeAlarms": 1 + polls,
        "PutItem": (1 + 3 * stages + 1) + (1 + stages + 1),
        "ChangeResourceRecordSets": stages, "GetChange": stages, "ModifyListener": stages,
    })
    print(f"\ncalls of one staged rollout ({STAGES}, bake {BAKE:g}s, poll {POLL:g}s), made vs fewest:")
    for op in sorted(set(made) | set(fewest)):
        print(f"  {op:<28} {made[op]:4d} {fewest[op]:4d}")
    total_made, total_fewest = sum(made.values()), sum(fewest.values())
    print(f"  calls / fewest: {total_made} / {total_fewest} = {total_made / total_fewest:.3f}   (goal <= 1.1)"
          f"  {'ok' if total_made / total_fewest <= 1.1 else 'OVER'}")


if "calls" in SECTIONS:
    calls_section()

# ---- a rollback across accounts (`role_arn`) vs the floor ------------------------------------
def roles_section():
    """A zone in another account: cutover assumes the route's role before its first Route53 call,
    as a script must. The floor makes the same four round trips in a row — AssumeRole, read, write,
    GetChange — with a warm client (creating a boto3 client costs more than a round trip, and
    would flatter cutover)."""
    role = "arn:aws:iam::111111111111:role/cutover-bench"
    assumed = boto3.client("sts", **KW).assume_role(RoleArn=role, RoleSessionName="bench")["Credentials"]
    role_kw = dict(aws_access_key_id=assumed["AccessKeyId"], aws_secret_access_key=assumed["SecretAccessKey"],
                   aws_session_token=assumed["SessionToken"])
    net = boto3.client("route53", **dict(KW, **role_kw))
    slow_net = boto3.client("route53", **dict(SLOW_KW, **role_kw))
    slow_sts = boto3.client("sts", **SLOW_KW)
    hub = f"hub{RUN_ID}.bench."
    hub_id = net.create_hosted_zone(Name=hub, CallerReference=f"floor-{hub}")["HostedZone"]["Id"].split("/")[-1]
    rec = f"api.{hub}"

    def cname(side, weight):
        return {"Action": "UPSERT", "ResourceRecordSet": {
            "Name": rec, "Type": "CNAME", "SetIdentifier": side, "Weight": weight, "TTL": 60,
            "ResourceRecords": [{"Value": f"{side}.example.test"}]}}

    def split(blue, green):
        net.change_resource_record_sets(HostedZoneId=hub_id, ChangeBatch={"Changes": [
            cname("blue", blue), cname("green", green)]})

    prof_role = profile(os.path.join(tmp, "role.toml"),
                        f'[[route53]]\nzone = "{hub_id}"\nrecord = "{rec}"\ntype = "CNAME"\n'
                        f'blue = "blue"\ngreen = "green"\nrole_arn = "{role}"\n')
    # Warm: connections open.
    slow_sts.get_caller_identity()
    slow_net.get_change(Id=net.change_resource_record_sets(HostedZoneId=hub_id, ChangeBatch={"Changes": [
        cname("blue", 50)]})["ChangeInfo"]["Id"])

    def floor_role():
        slow_sts.assume_role(RoleArn=role, RoleSessionName="floor")
        slow_net.list_resource_record_sets(HostedZoneId=hub_id, StartRecordName=rec, StartRecordType="CNAME",
                                           MaxItems="2")
        change = slow_net.change_resource_record_sets(HostedZoneId=hub_id, ChangeBatch={"Changes": [
            cname("blue", 100), cname("green", 0)]})["ChangeInfo"]["Id"]
        while slow_net.get_change(Id=change)["ChangeInfo"]["Status"] != "INSYNC":
            time.sleep(0.05)

    sr = {"role": Sample("rollback, one route in another account"), "floor": Sample("floor, the same with AssumeRole")}
    for i in range(runs):
        split(50, 50)
        cutover(sr["role"], prof_role, "rollback", "--to", "blue", "--yes")
        split(50, 50)
        scripted(sr["floor"], floor_role)
    print(f"\nrollback across accounts vs the API floor, {runs} runs each, alternated:")
    for k in sr:
        print(sr[k].line())
    print(ratio(sr["role"], sr["floor"], 1.15))


if "roles" in SECTIONS:
    roles_section()

print(f"\nRoute53 calls started in any one second, at peak: {PEAK['per_second']} ({PEAK['where']})"
      f"   (goal <= 5)  {'ok' if PEAK['per_second'] <= 5 else 'OVER'}")
