-- 0004: devices reached through LoRaWAN network servers and SenML, by configuration.
--
-- * devices.dev_eui: the LoRaWAN DevEUI (lower-case hex), how The Things Stack and ChirpStack
--   uplinks find their device. Globally unique: an EUI-64 names one radio worldwide.
-- * devices.status: 'quarantined' devices were auto-registered from an uplink and wait for an
--   operator (`placewatch devices approve`); their uplinks are dead-lettered until then.
-- * network_applications: which council a network server application belongs to, and whether
--   its unknown devices are auto-registered into quarantine.
-- * device_models: mapping files imported with `placewatch models import` (built-in models ship
--   with the package; a row here with the same id overrides one).
-- * device_counters: the last value of cumulative counters (door-open totals, energy), so a
--   reading stores the increase since the previous uplink.

ALTER TABLE devices
    ADD COLUMN dev_eui text CHECK (dev_eui ~ '^[0-9a-f]{16}$'),
    ADD COLUMN status  text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'quarantined'));
CREATE UNIQUE INDEX devices_dev_eui ON devices (dev_eui) WHERE dev_eui IS NOT NULL;

CREATE TABLE network_applications (
    network       text NOT NULL CHECK (network IN ('ttn', 'chirpstack')),
    -- TTN: '{application id}@{tenant id}' as in the topic; ChirpStack: the application UUID.
    application   text NOT NULL,
    council_id    text NOT NULL REFERENCES councils (council_id),
    auto_register boolean NOT NULL DEFAULT false,
    PRIMARY KEY (network, application)
);

CREATE TABLE device_models (
    model_id   text PRIMARY KEY,
    kind       text NOT NULL
               CHECK (kind IN ('bin_fill', 'air_quality', 'flood_level', 'home_activity')),
    spec       jsonb NOT NULL,
    source     text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE device_counters (
    council_id text NOT NULL,
    device_id  text NOT NULL,
    field      text NOT NULL,
    time       timestamptz NOT NULL,
    value      double precision NOT NULL,
    PRIMARY KEY (council_id, device_id, field),
    FOREIGN KEY (council_id, device_id) REFERENCES devices (council_id, device_id)
        ON DELETE CASCADE
);
