"""`cutover set` on many routes vs one, side by side: 50 ALB rules vs 1 rule, and 100 Route53
records in one zone vs 1 record. Runs alternate; each starts from 100/0. Prints median ratios."""
import os
import sys
import tempfile

from common import CUTOVER, RUN_ID, ec2, elb, median, profile, set_records, timed, zone

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
tmp = tempfile.mkdtemp()

# --- ALB: one listener with 50 rules, another load balancer with 1 rule ---
vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
           for i, az in enumerate(["us-west-2a", "us-west-2b"], start=1)]
tg = {s: elb.create_target_group(Name=f"b{s}{RUN_ID}", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")
      ["TargetGroups"][0]["TargetGroupArn"] for s in ("blue", "green")}


def forward(blue, green):
    return [{"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": tg["blue"], "Weight": blue}, {"TargetGroupArn": tg["green"], "Weight": green}]}}]


def alb_with_rules(n, tag):
    lb = elb.create_load_balancer(Name=f"b{tag}{RUN_ID}", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    listener = elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80,
                                   DefaultActions=forward(1, 0))["Listeners"][0]["ListenerArn"]
    rules = [elb.create_rule(ListenerArn=listener, Priority=i + 1, Actions=forward(100, 0),
                             Conditions=[{"Field": "path-pattern", "Values": [f"/r{i}/*"]}])["Rules"][0]["RuleArn"]
             for i in range(n)]
    text = "".join(f'[[alb]]\nlistener = "{listener}"\nrule = "{r}"\nblue = "{tg["blue"]}"\ngreen = "{tg["green"]}"\n'
                   for r in rules)
    return rules, profile(os.path.join(tmp, f"alb{n}.toml"), text)


def reset_rules(rules):
    for r in rules:
        elb.modify_rule(RuleArn=r, Actions=forward(100, 0))


# --- Route53: 100 weighted pairs in one zone, and 1 in another ---
def zone_with_records(n, tag):
    name = f"{tag}{RUN_ID}.bench."
    zid = zone(name)
    records = [f"r{i}.{name}" for i in range(n)]
    text = "".join(f'[[route53]]\nzone = "{name}"\nrecord = "{r}"\nblue = "blue"\ngreen = "green"\n' for r in records)
    return zid, records, profile(os.path.join(tmp, f"r53{n}.toml"), text)


pairs = {
    "alb": [alb_with_rules(50, "m"), alb_with_rules(1, "o")],
    "route53": [zone_with_records(100, "many"), zone_with_records(1, "one")],
}
times = {("alb", 50): [], ("alb", 1): [], ("route53", 100): [], ("route53", 1): []}
for i in range(runs):
    for (rules, prof), n in zip(pairs["alb"], (50, 1)):
        reset_rules(rules)
        times[("alb", n)].append(timed([CUTOVER, "-p", prof, "set", "green=25", "--yes"]))
    for (zid, records, prof), n in zip(pairs["route53"], (100, 1)):
        set_records(zid, records, 100, 0)
        times[("route53", n)].append(timed([CUTOVER, "-p", prof, "set", "green=25", "--yes"]))

for kind, many, goal in (("alb", 50, 5), ("route53", 100, 1.5)):
    m, o = median(times[(kind, many)]), median(times[(kind, 1)])
    print(f"{kind}: set on {many} routes median {m * 1000:7.1f} ms, on 1 route {o * 1000:6.1f} ms, "
          f"ratio {m / o:.2f}   (goal <= {goal})")
