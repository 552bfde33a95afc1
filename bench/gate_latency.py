"""Time from a CloudWatch alarm flipping to ALARM until the stable side holds all traffic again,
for a rollout reading its gates every 200 ms (failure_threshold 2, the default), measured from
outside: the emulator's listener weights are sampled every 5 ms. Then: AWS calls one poll tick
makes per gate kind, counted from the SDK's own debug log of a short rollout."""
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

from common import CUTOVER, RUN_ID, ec2, elb, median, profile

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
tmp = tempfile.mkdtemp()
cw = __import__("boto3").client("cloudwatch", **__import__("common").KW)

vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
           for i, az in enumerate(["us-west-2a", "us-west-2b"], start=1)]
tg = {}
for s in ("blue", "green"):
    tg[s] = elb.create_target_group(Name=f"g{s}{RUN_ID}", Protocol="HTTP", Port=80, VpcId=vpc,
                                    TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    elb.register_targets(TargetGroupArn=tg[s], Targets=[{"Id": "10.0.1.5", "Port": 80}])
lb = elb.create_load_balancer(Name=f"gl{RUN_ID}", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]


def forward(blue, green):
    return [{"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": tg["blue"], "Weight": blue}, {"TargetGroupArn": tg["green"], "Weight": green}]}}]


listener = elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80,
                               DefaultActions=forward(100, 0))["Listeners"][0]["ListenerArn"]
alarm = f"bench-green-{RUN_ID}"
cw.put_metric_alarm(AlarmName=alarm, MetricName="m", Namespace="bench", Statistic="Sum", Period=60,
                    EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
route = f'[[alb]]\nlistener = "{listener}"\nblue = "{tg["blue"]}"\ngreen = "{tg["green"]}"\n'
prof = profile(os.path.join(tmp, "gl.toml"), route +
               '[rollout]\nstages = [10, 100]\nbake = "60s"\npoll = "200ms"\nfailure_threshold = 2\n'
               f'[[gate]]\ntype = "alarm"\nalarms = ["{alarm}"]\n')


def green_weight():
    fwd = elb.describe_listeners(ListenerArns=[listener])["Listeners"][0]["DefaultActions"][0]["ForwardConfig"]
    return {t["TargetGroupArn"]: t["Weight"] for t in fwd["TargetGroups"]}[tg["green"]]


def wait(cond, secs):
    deadline = time.monotonic() + secs
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit("bench: timed out")
        time.sleep(0.005)


lat = []
for i in range(runs):
    elb.modify_listener(ListenerArn=listener, DefaultActions=forward(100, 0))
    cw.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="bench")
    p = subprocess.Popen([CUTOVER, "-p", prof, "rollout"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait(lambda: green_weight() > 0, 30)
    time.sleep(0.3 + 0.037 * i)  # flip at different points of the poll cycle
    cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="bench")
    t0 = time.perf_counter()
    wait(lambda: green_weight() == 0, 30)
    lat.append(time.perf_counter() - t0)
    assert p.wait(timeout=30) == 3, "the rollout should end rolled back (exit 3)"

print(f"alarm → stable side holding all traffic, poll 200 ms, failure_threshold 2, {runs} runs:")
print(f"  median {median(lat) * 1000:.0f} ms, min {min(lat) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms"
      f"   (goal <= poll + 1 s = 1200 ms)")

# --- AWS calls per poll tick, by gate kind: a 2 s bake at 200 ms polls, SDK debug log counted ---
elb.modify_listener(ListenerArn=listener, DefaultActions=forward(100, 0))
cw.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="bench")
gates = {
    "alarm (2 alarms)": f'[[gate]]\ntype = "alarm"\nalarms = ["{alarm}", "{alarm}"]\n',
    "target-health (ALB route)": '[[gate]]\ntype = "target-health"\n',
    "metric": '[[gate]]\ntype = "metric"\nnamespace = "bench"\nmetric = "m"\nmin = 0\n',
}
calls_of = {"alarm (2 alarms)": "DescribeAlarms", "target-health (ALB route)": "DescribeTargetHealth",
            "metric": "GetMetricData"}
env = dict(os.environ, CUTOVER_LOG="aws_smithy_runtime=debug,aws_sdk_cloudwatch=debug,"
           "aws_sdk_elasticloadbalancingv2=debug,cutover=info")
for kind, gate in gates.items():
    elb.modify_listener(ListenerArn=listener, DefaultActions=forward(100, 0))
    prof = profile(os.path.join(tmp, "calls.toml"), route +
                   '[rollout]\nstages = [100]\nbake = "2s"\npoll = "200ms"\nmax_hold = "5s"\n' + gate)
    out = subprocess.run([CUTOVER, "-p", prof, "--log-format", "json", "rollout"], env=env,
                         capture_output=True, text=True, timeout=60)
    counts = collections.Counter()
    ticks = 0
    for line in out.stderr.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("event") == "gates-read":
            ticks += 1
        msg = ev.get("message", "")
        if msg.startswith("beginning attempt #1"):
            for span in ev.get("spans", []) + [ev.get("span", {})]:
                if span.get("rpc.method"):
                    counts[span["rpc.method"]] += 1
    per_tick = counts[calls_of[kind]] / ticks if ticks else float("nan")
    print(f"  {kind:28s}: {per_tick:.1f} {calls_of[kind]} call(s) per tick ({ticks} ticks)")
