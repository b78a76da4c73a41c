-- Editors define, amend and retire life events like procedures and agencies: a retired life
-- event leaves the public list but keeps its row (its id stays taken, its events explain it);
-- the version counts its changes, as the events on its stream do.

ALTER TABLE life_events
    ADD COLUMN status  text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    ADD COLUMN version int  NOT NULL DEFAULT 1;
