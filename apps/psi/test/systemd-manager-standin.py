#!/usr/bin/python3
# Stands in for org.freedesktop.systemd1 on a private bus (TESTING.md "D-Bus": no systemd
# runs as PID 1 here). It answers the Manager methods PSI calls (Reload, EnableUnitFiles,
# StartUnit) the way systemd does and appends each call to a log, one JSON line per call.
# Usage: systemd-manager-standin.py BUS_ADDRESS LOG_FILE (prints "ready" once it owns the name)
import json
import sys

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

MANAGER = "org.freedesktop.systemd1.Manager"


class Manager(dbus.service.Object):
    def __init__(self, bus, log):
        super().__init__(bus, "/org/freedesktop/systemd1")
        self.log = log
        self.jobs = 0

    def record(self, method, *args):
        with open(self.log, "a") as out:
            out.write(json.dumps({"method": method, "args": list(args)}) + "\n")

    @dbus.service.method(MANAGER, in_signature="", out_signature="")
    def Reload(self):
        self.record("Reload")

    @dbus.service.method(MANAGER, in_signature="asbb", out_signature="ba(sss)")
    def EnableUnitFiles(self, files, runtime, force):
        self.record("EnableUnitFiles", [str(f) for f in files], bool(runtime), bool(force))
        changes = [("symlink", f"/etc/systemd/system/timers.target.wants/{f}", f) for f in files]
        return (True, changes)

    @dbus.service.method(MANAGER, in_signature="ss", out_signature="o")
    def StartUnit(self, name, mode):
        self.record("StartUnit", str(name), str(mode))
        self.jobs += 1
        return dbus.ObjectPath(f"/org/freedesktop/systemd1/job/{self.jobs}")


def main():
    address, log = sys.argv[1], sys.argv[2]
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(address)
    name = dbus.service.BusName("org.freedesktop.systemd1", bus)
    manager = Manager(bus, log)
    print("ready", flush=True)
    GLib.MainLoop().run()
    del name, manager


if __name__ == "__main__":
    main()
