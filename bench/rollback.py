"""`cutover rollback` as a whole process vs the AWS CLI doing the same rollback
(change-resource-record-sets + wait resource-record-sets-changed), on the same emulator.
Runs alternate; both start from a 50/50 split. Prints the median of each and their ratio."""
import json
import os
import sys
import tempfile

from common import CUTOVER, ENDPOINT, RUN_ID, median, output_of, profile, run_bounded, set_records, timed, zone

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
name = f"rb{RUN_ID}.bench."
record = f"api.{name}"
zone_id = zone(name)
tmp = tempfile.mkdtemp()
prof = profile(os.path.join(tmp, "rb.toml"),
               f'[[route53]]\nzone = "{name}"\nrecord = "{record}"\nblue = "blue"\ngreen = "green"\n')
batch = os.path.join(tmp, "batch.json")
from common import weighted_alias  # noqa: E402
with open(batch, "w") as f:
    json.dump({"Changes": [weighted_alias(record, "blue", 100, "blue-1.us-west-2.elb.amazonaws.com"),
                           weighted_alias(record, "green", 0, "green-1.us-west-2.elb.amazonaws.com")]}, f)

aws = os.path.join(os.path.dirname(sys.executable), "aws")


def aws_cli_rollback():
    import time
    t0 = time.perf_counter()
    out = output_of([aws, "--endpoint-url", ENDPOINT, "route53", "change-resource-record-sets", "--hosted-zone-id",
                     zone_id, "--change-batch", f"file://{batch}", "--output", "json"])
    change = json.loads(out)["ChangeInfo"]["Id"]
    run_bounded([aws, "--endpoint-url", ENDPOINT, "route53", "wait", "resource-record-sets-changed", "--id", change])
    return time.perf_counter() - t0


cut, cli = [], []
for i in range(runs):
    set_records(zone_id, [record], 50, 50)
    cut.append(timed([CUTOVER, "-p", prof, "rollback", "--to", "blue", "--yes"]))
    set_records(zone_id, [record], 50, 50)
    cli.append(aws_cli_rollback())

print(f"rollback, {runs} runs each, alternated, from 50/50:")
print(f"  cutover rollback --to blue          median {median(cut) * 1000:8.1f} ms")
print(f"  aws route53 change + wait           median {median(cli) * 1000:8.1f} ms")
print(f"  ratio cutover / aws-cli             {median(cut) / median(cli):.3f}   (goal <= 0.05)")
