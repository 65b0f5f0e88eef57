-- The hardware a worker measures latency on (a JSON `DeviceProfile`: CPU
-- model, logical CPUs, instruction-set extensions, memory, latency
-- threads); '' for workers that registered none.
ALTER TABLE workers ADD COLUMN device_profile TEXT NOT NULL DEFAULT '';
