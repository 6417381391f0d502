"""The phone as the roller's sensor: live samples from phyphox or Sensor Logger.

A phone taped to the roller's end cap turns with the roller, so its accelerometer and gyro see
what a chip inside the core would. This package turns a phone app's network stream into what
the service reads from a chip driver (:class:`~roller.phone.source.PhoneSource` has the
driver's ``read()``, ``health``, ``chip`` and ``close()``), so the same pipeline, coach, MQTT and
display work unchanged.

One module per concept: ``settings`` (config section ``[phone]``), ``phone_clock`` (the phone's
clock mapped to ours, drift tracked), ``stream_merge`` (two sensor clocks -> samples on the
gyro's times, gaps kept as gaps), ``phyphox`` (the remote-access client and its poller),
``sensor_logger`` (the HTTP push receiver), ``source`` (the driver-like source the service
reads), ``apps`` (the one the config names, opened), ``detection`` (``roller detect
--phone``), ``phyphox_standin`` (a local server speaking phyphox's protocol, fed by the
simulated person, for ``roller demo --phone`` and the tests) and ``experiment`` (our .phyphox
file, served for its QR code).
"""
