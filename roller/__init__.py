"""roller companion: turns a foam roller with an IMU inside into a coach.

The flow, one module per stage:

    firmware_bridge (sensor)  ->  roller.pipeline  ->  roller.coach
        ->  roller.publisher (MQTT)  ->  roller.display (web page)

Every public surface uses SI units: m, s, m/s, rad/s, m/s^2.
"""

__version__ = "0.1.0"
