"""Record Ids as Salesforce makes them: a key prefix, 12 characters, and the 3-character
case checksum that makes the 18-character form; a 15-character Id names the same record."""

import pytest

from db.ids import KEY_PREFIXES, checksum_suffix, is_valid_id, new_id, to_18


def test_the_checksum_is_salesforce_s():
    # Salesforce's documented pair: 001A0000006Vm9r is 001A0000006Vm9rIAC
    assert checksum_suffix("001A0000006Vm9r") == "IAC"
    assert to_18("001A0000006Vm9r") == "001A0000006Vm9rIAC"
    assert checksum_suffix("000000000000000") == "AAA" and checksum_suffix("AAAAAAAAAAAAAAA") == "555"


@pytest.mark.parametrize("object_name", sorted(KEY_PREFIXES))
def test_new_ids_carry_their_prefix_and_checksum(object_name):
    made = {new_id(object_name) for _ in range(200)}
    assert len(made) == 200
    for record_id in made:
        assert record_id.startswith(KEY_PREFIXES[object_name]) and len(record_id) == 18 and is_valid_id(record_id)
        assert to_18(record_id[:15]) == record_id


@pytest.mark.parametrize("value", ["", "0" * 14, "0" * 16, "0" * 17, "0" * 19, "0a3_00000000000", "0a3 0000000000000"])
def test_anything_but_15_or_18_letters_and_digits_is_not_an_id(value):
    assert not is_valid_id(value)


def test_an_18_character_id_is_kept_as_it_is():
    # Ids made before they carried the checksum are found by their 18 characters
    assert to_18("1OsAAAAAAAAAAAAAAA") == "1OsAAAAAAAAAAAAAAA"
