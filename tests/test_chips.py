"""The chip registry against the emulated chips: every row is found where it says it sits."""

from __future__ import annotations

import pytest

from firmware_bridge.chips import CHIP_CHOICES, CHIPS, EMULATED_VARIANTS, accepts, make_chip
from firmware_bridge.clock import ManualClock
from firmware_bridge.detection import detect, identify
from firmware_bridge.emulated import EmulatedBus
from firmware_bridge.errors import ImuNotFoundError


@pytest.mark.parametrize("variant", list(EMULATED_VARIANTS))
def test_each_emulated_variant_is_recognised_as_its_row_at_each_of_its_addresses(variant):
    row = EMULATED_VARIANTS[variant]
    for address in row.addresses:
        bus = EmulatedBus([make_chip(variant, address=address, clock=ManualClock())])
        assert identify(bus, address).chip == row.info


@pytest.mark.parametrize("row", CHIPS, ids=lambda row: row.name)
def test_the_config_names_of_a_row_accept_it_and_the_others_refuse_it(row):
    variant = next(iter(row.emulators))
    for wanted in CHIP_CHOICES:
        bus = EmulatedBus([make_chip(variant, clock=ManualClock())])
        if accepts(row, wanted):
            assert detect(bus, chip=wanted, clock=ManualClock()).chip == row.name
        else:
            with pytest.raises(ImuNotFoundError):
                detect(bus, chip=wanted, clock=ManualClock())


def test_every_row_has_a_driver_an_emulator_and_a_config_name():
    for row in CHIPS:
        assert row.emulators and row.config_names and row.addresses
        assert all(name in CHIP_CHOICES for name in row.config_names)
