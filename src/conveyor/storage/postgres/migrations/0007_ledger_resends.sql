-- How many times a notification was handed to its provider again after an attempt whose
-- outcome was never recorded (a worker killed mid-send): the crash resends that
-- `conveyor notify counts`, the API and the demo report. Additive: older nodes ignore it,
-- and a constant default adds the column without rewriting the table.
ALTER TABLE conveyor_deliveries ADD COLUMN resends integer NOT NULL DEFAULT 0;
