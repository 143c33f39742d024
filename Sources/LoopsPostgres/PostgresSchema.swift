/// The tables and the claim function of ``PostgresRunStore``.
enum PostgresSchema {
    /// Version 1. Instants are `double precision` seconds since 1970: the very `Double` a
    /// `Date` holds, so a slot read back compares equal to the one a schedule gives. Leases are
    /// `timestamptz` on the database's clock only.
    static let version1 = [
        """
        CREATE TABLE IF NOT EXISTS loops_loop (
            name text PRIMARY KEY,
            last_token bigint NOT NULL DEFAULT 0
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS loops_run (
            loop text NOT NULL REFERENCES loops_loop (name),
            scheduled_at double precision NOT NULL,
            token bigint NOT NULL,
            owner text NOT NULL,
            lease_until timestamptz NOT NULL,
            finished_at double precision,
            outcome text,
            detail text,
            PRIMARY KEY (loop, scheduled_at)
        )
        """,
        """
        CREATE INDEX IF NOT EXISTS loops_run_unfinished ON loops_run (loop, scheduled_at) WHERE finished_at IS NULL
        """,
        // One round trip per claim. The loop's row is locked first, so claims of one loop are
        // serialised and each statement after the lock sees what the previous claim committed.
        """
        CREATE OR REPLACE FUNCTION loops_claim(p_loop text, p_slot double precision, p_owner text, p_lease_ms bigint)
        RETURNS TABLE (slot double precision, token bigint) LANGUAGE plpgsql AS $$
        DECLARE
            v_token bigint;
            v_lapsed double precision;
        BEGIN
            INSERT INTO loops_loop (name) VALUES (p_loop) ON CONFLICT (name) DO NOTHING;
            PERFORM 1 FROM loops_loop WHERE name = p_loop FOR UPDATE;
            -- A slot whose replica died mid-body (the one asked for, or an earlier one): its
            -- lease ran out on this database's clock. A restart of the server gives every lease
            -- a full term from the restart, so that a replica that finished during the outage
            -- records it instead of losing the slot.
            SELECT r.scheduled_at INTO v_lapsed FROM loops_run r
                WHERE r.loop = p_loop AND r.finished_at IS NULL
                  AND greatest(r.lease_until, pg_postmaster_start_time() + p_lease_ms * interval '1 millisecond') < clock_timestamp()
                  AND r.scheduled_at <= p_slot
                ORDER BY r.scheduled_at LIMIT 1;
            IF v_lapsed IS NOT NULL THEN
                UPDATE loops_loop SET last_token = last_token + 1 WHERE name = p_loop RETURNING last_token INTO v_token;
                UPDATE loops_run SET token = v_token, owner = p_owner,
                        lease_until = clock_timestamp() + p_lease_ms * interval '1 millisecond'
                    WHERE loop = p_loop AND scheduled_at = v_lapsed;
                RETURN QUERY SELECT v_lapsed, v_token;
                RETURN;
            END IF;
            IF EXISTS (SELECT 1 FROM loops_run r WHERE r.loop = p_loop
                       AND (r.scheduled_at = p_slot OR (r.scheduled_at > p_slot AND r.finished_at IS NOT NULL))) THEN
                RETURN;
            END IF;
            UPDATE loops_loop SET last_token = last_token + 1 WHERE name = p_loop RETURNING last_token INTO v_token;
            INSERT INTO loops_run (loop, scheduled_at, token, owner, lease_until)
                VALUES (p_loop, p_slot, v_token, p_owner, clock_timestamp() + p_lease_ms * interval '1 millisecond');
            RETURN QUERY SELECT p_slot, v_token;
        END
        $$
        """,
    ]
}
