"""The rooms benchmarks/codec_agreement.py plays clips in: their measured decay and direct-sound
share are what the report says, so its room figures mean what they claim."""

import numpy as np
import pytest

from benchmarks.codec_agreement import (DIRECT_SOUND_S, ROOM_DRR_DB, ROOMS, SHOEBOX_ROOMS, decay_time_s,
                                        describe_rooms, direct_to_reverberant_db, in_room,
                                        room_impulse_response, shoebox_impulse_response)

RATE = 16000


@pytest.mark.parametrize("rt60", sorted(ROOMS.values()))
def test_the_measurements_recover_a_synthetic_rooms_settings(rt60):
    response = room_impulse_response(rt60, RATE)
    assert decay_time_s(response, RATE) == pytest.approx(rt60, rel=0.05)
    assert direct_to_reverberant_db(response, RATE) == pytest.approx(ROOM_DRR_DB, abs=0.5)


def test_shoebox_rooms_start_at_the_direct_sound_and_the_hall_rings_longer():
    office, hall = (shoebox_impulse_response(name, RATE) for name in SHOEBOX_ROOMS)
    for response in (office, hall):
        assert int(np.argmax(np.abs(response))) == int(DIRECT_SOUND_S * RATE)   # delay dropped
    assert decay_time_s(hall, RATE) > 1.5 * decay_time_s(office, RATE)
    # a talker metres away in a live room: more reverberant than direct energy
    assert direct_to_reverberant_db(office, RATE) < 0


def test_a_clip_in_a_room_keeps_its_length_and_peak_and_is_smeared():
    rng = np.random.default_rng(0)
    wave = np.zeros(RATE)
    wave[RATE // 4: RATE // 4 + 800] = 0.5 * rng.standard_normal(800)   # a 50 ms burst
    wet = in_room(wave, shoebox_impulse_response("hall_rt60_0.8s", RATE))
    assert wet.shape == wave.shape
    assert np.max(np.abs(wet)) == pytest.approx(np.max(np.abs(wave)))
    after = slice(RATE // 4 + 800 + RATE // 10, RATE // 4 + 800 + RATE // 5)   # 100-200 ms after it
    assert np.abs(wave[after]).max() == 0 and np.abs(wet[after]).max() > 0.01


def test_the_report_describes_every_room():
    rooms = describe_rooms(RATE)
    assert set(rooms) == set(ROOMS) | set(SHOEBOX_ROOMS)
    assert all(r["measured_t20_s"] > 0 for r in rooms.values())
