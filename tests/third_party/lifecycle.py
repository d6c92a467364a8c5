"""Unmodified third-party clients against the emulator.

HashiCorp's Python SDK (pytfe) and terrasnek each run a full policy lifecycle:
create -> upload -> list -> update -> read -> download -> delete, then check the delete stuck.

Usage: python3 lifecycle.py BASE_URL TOKEN ORGANIZATION
(run.sh starts the emulator and passes these.)
"""

import sys


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def pytfe_lifecycle(base, token, org):
    from pytfe import TFEClient, TFEConfig
    from pytfe.errors import NotFound
    from pytfe.models import EnforcementLevel, PolicyCreateOptions, PolicyKind, PolicyUpdateOptions

    client = TFEClient(TFEConfig(address=base, token=token, max_retries=0))
    code = b"# pytfe\nmain = rule { true }\r\n"

    created = client.policies.create(
        org,
        PolicyCreateOptions(
            name="pytfe-policy",
            kind=PolicyKind.SENTINEL,
            enforcement_level=EnforcementLevel.ENFORCEMENT_ADVISORY,
        ),
    )
    check(created.id.startswith("pol-"), f"create: id {created.id}")
    check(created.name == "pytfe-policy", f"create: name {created.name}")
    check(created.enforcement_level == EnforcementLevel.ENFORCEMENT_ADVISORY,
          f"create: mode {created.enforcement_level}")

    client.policies.upload(created.id, code)

    listed = [p for p in client.policies.list(org) if p.id == created.id]
    check(len(listed) == 1, f"list: {listed}")
    check(listed[0].updated_at is not None, "list: updated-at after upload")

    updated = client.policies.update(
        created.id,
        PolicyUpdateOptions(enforcement_level=EnforcementLevel.ENFORCEMENT_HARD),
    )
    check(updated.enforcement_level == EnforcementLevel.ENFORCEMENT_HARD,
          f"update: mode {updated.enforcement_level}")

    read = client.policies.read(created.id)
    check(read.enforcement_level == EnforcementLevel.ENFORCEMENT_HARD,
          f"read: mode {read.enforcement_level}")
    check(read.name == "pytfe-policy", f"read: name {read.name}")

    downloaded = client.policies.download(created.id)
    check(downloaded == code, f"download: {downloaded!r}")

    client.policies.delete(created.id)
    try:
        client.policies.read(created.id)
    except NotFound:
        pass
    else:
        raise AssertionError("read after delete did not fail with NotFound")
    print("pytfe: create, upload, list, update, read, download, delete: ok")


def terrasnek_lifecycle(base, token, org):
    from terrasnek.api import TFC
    from terrasnek.exceptions import TFCHTTPNotFound

    api = TFC(token, url=base, skip_version_check=True)
    api.set_org(org)
    name = "terrasnek-policy"
    code = "# terrasnek\nmain = rule { true }\n"

    created = api.policies.create({
        "data": {
            "type": "policies",
            "attributes": {
                "name": name,
                "enforce": [{"path": f"{name}.sentinel", "mode": "soft-mandatory"}],
            },
        }
    })["data"]
    policy_id = created["id"]
    check(policy_id.startswith("pol-"), f"create: id {policy_id}")
    check(created["attributes"]["enforcement-level"] == "soft-mandatory", f"create: {created}")

    api.policies.upload(policy_id, code)

    listed = [p for p in api.policies.list_all()["data"] if p["id"] == policy_id]
    check(len(listed) == 1, f"list: {listed}")
    check(listed[0]["attributes"]["enforce"][0]["mode"] == "soft-mandatory", f"list: {listed}")

    updated = api.policies.update(policy_id, {
        "data": {
            "type": "policies",
            "attributes": {"enforce": [{"path": f"{name}.sentinel", "mode": "advisory"}]},
        }
    })["data"]
    check(updated["attributes"]["enforce"][0]["mode"] == "advisory", f"update: {updated}")

    shown = api.policies.show(policy_id)["data"]
    check(shown["attributes"]["enforcement-level"] == "advisory", f"show: {shown}")

    text = api.policies.get_policy_text(policy_id)
    check(text == code, f"download: {text!r}")

    api.policies.destroy(policy_id)
    try:
        api.policies.show(policy_id)
    except TFCHTTPNotFound:
        pass
    else:
        raise AssertionError("show after destroy did not fail with not found")
    print("terrasnek: create, upload, list, update, read, download, delete: ok")


def main():
    base, token, org = sys.argv[1:4]
    pytfe_lifecycle(base, token, org)
    terrasnek_lifecycle(base, token, org)


if __name__ == "__main__":
    main()
