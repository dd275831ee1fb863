-- Voter for PostgreSQL: the same schema and Vote logic as LaneDB's voter module, as a PL/pgSQL function. The two
-- views are tables kept by the function (PostgreSQL has no incrementally maintained views).
CREATE TABLE contestants (contestant_number INTEGER PRIMARY KEY, contestant_name VARCHAR(50) NOT NULL);
CREATE TABLE area_code_state (area_code SMALLINT PRIMARY KEY, state VARCHAR(2) NOT NULL);
CREATE TABLE votes (phone_number BIGINT NOT NULL, state VARCHAR(2) NOT NULL, contestant_number INTEGER NOT NULL);
CREATE TABLE v_votes_by_phone_number (phone_number BIGINT PRIMARY KEY, num_votes BIGINT NOT NULL);
CREATE TABLE v_votes_by_contestant_number_state (
    contestant_number INTEGER NOT NULL, state VARCHAR(2) NOT NULL, num_votes BIGINT NOT NULL,
    PRIMARY KEY (contestant_number, state));
INSERT INTO contestants VALUES (1, 'Edwina Burnam'), (2, 'Tabatha Gehling'), (3, 'Kelly Clauss'),
    (4, 'Jessie Alloway'), (5, 'Alana Bregman'), (6, 'Jessie Eichman');

CREATE FUNCTION vote(p_phone BIGINT, p_contestant INTEGER, p_max BIGINT) RETURNS BIGINT AS $$
DECLARE
    v_state VARCHAR(2);
    v_count BIGINT;
BEGIN
    PERFORM 1 FROM contestants WHERE contestant_number = p_contestant;
    IF NOT FOUND THEN
        RETURN 1;
    END IF;
    SELECT num_votes INTO v_count FROM v_votes_by_phone_number WHERE phone_number = p_phone;
    IF v_count IS NOT NULL AND v_count >= p_max THEN
        RETURN 2;
    END IF;
    IF p_phone / 10000000 BETWEEN -32768 AND 32767 THEN
        SELECT state INTO v_state FROM area_code_state WHERE area_code = (p_phone / 10000000)::smallint;
    END IF;
    v_state := coalesce(v_state, 'XX');
    INSERT INTO votes VALUES (p_phone, v_state, p_contestant);
    INSERT INTO v_votes_by_phone_number VALUES (p_phone, 1)
        ON CONFLICT (phone_number) DO UPDATE SET num_votes = v_votes_by_phone_number.num_votes + 1;
    INSERT INTO v_votes_by_contestant_number_state VALUES (p_contestant, v_state, 1)
        ON CONFLICT (contestant_number, state)
        DO UPDATE SET num_votes = v_votes_by_contestant_number_state.num_votes + 1;
    RETURN 0;
END
$$ LANGUAGE plpgsql;
