"""One address, one account: addresses compared byte for byte (``utf8mb4_bin``) and stored in
the canonical form of ``common.addresses``; collisions are reported, never merged."""

from auth.migrations import columns
from common.addresses import try_canonical

BINARY_EMAIL = "VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"


def apply(cur) -> list[str]:
    """Switch the collation, then rewrite the addresses (again, after an interrupted run: a
    canonical address is left as it is)."""
    notes = []
    if columns(cur, "users")["email"][1] != "utf8mb4_bin":
        # Unique under the old, looser collation means unique byte for byte too.
        cur.execute(f"ALTER TABLE users MODIFY email {BINARY_EMAIL}")
        notes.append("addresses are now compared byte for byte (utf8mb4_bin)")
    return notes + canonicalize_addresses(cur)


def canonicalize_addresses(cur) -> list[str]:
    """Rewrite every stored address in its canonical form (``common.addresses``). Accounts
    whose addresses share one canonical form are left exactly as they are and reported, as are
    addresses that are no longer acceptable: an operator decides (``delete-user ACCOUNT_ID``).
    Returns one line per collision and refusal, and the number rewritten (none when there are
    no accounts)."""
    cur.execute("SELECT account_id, email FROM users ORDER BY id")
    rows = cur.fetchall()
    if not rows:
        return []
    groups: dict[str, list[tuple[str, str]]] = {}
    notes = []
    for account_id, email in rows:
        form = try_canonical(email)
        if form is None:
            notes.append(f"WARNING: account {account_id} has the address {email!r}, which is "
                         "not acceptable any more (invisible characters or mixed alphabets); "
                         "left as it is: it cannot log in until an operator deletes it")
            continue
        groups.setdefault(form, []).append((account_id, email))
    changed = 0
    for form, members in groups.items():
        if len(members) > 1:
            listed = ", ".join(f"{account_id} ({email!r})" for account_id, email in members)
            notes.append(f"WARNING: address collision: accounts {listed} are all {form!r} in "
                         "the canonical form; none was changed or merged. Only the one spelled "
                         "exactly that way can log in; keep one with "
                         "'flask --app auth delete-user ACCOUNT_ID' for the others")
            continue
        account_id, email = members[0]
        if email != form:
            cur.execute("UPDATE users SET email = %s WHERE account_id = %s", (form, account_id))
            changed += 1
    notes.append(f"{changed} address(es) rewritten in the canonical form")
    return notes
