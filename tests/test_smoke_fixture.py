from side_engine.store import AuditStore


def test_the_tiny_audit_holds_every_leg_of_the_sweep(finished_audit):
    store = AuditStore.open(finished_audit)
    keys = {(r.guide, r.gamma) for r in store.images()}
    assert keys == {("none", 0.0), ("td", 5.0), ("ti", 5.0)}
    assert store.image_count() == 18
