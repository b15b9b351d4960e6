"""The server seam: what it asks of a collection, and which errors it lets through."""

import pymongo.errors
import pytest
from bson import ObjectId

from common import mongo_compat


class FilesStandIn:
    """A ``<bucket>.files`` collection holding ``ids``; ``refuse_missing`` answers a delete of
    a document that is not there with an error, as some servers do."""

    def __init__(self, ids=(), refuse_missing=False, refuse_all=False):
        self.ids, self.refuse_missing, self.refuse_all = set(ids), refuse_missing, refuse_all

    def delete_one(self, query):
        oid = query["_id"]
        if self.refuse_all or (self.refuse_missing and oid not in self.ids):
            raise pymongo.errors.OperationFailure(f"File with id {oid} not found")
        self.ids.discard(oid)

    def find_one(self, query, projection=None):
        return {"_id": query["_id"]} if query["_id"] in self.ids else None


def test_object_id_equals_is_a_filter_value_of_that_id_alone():
    oid = ObjectId()
    assert mongo_compat.object_id_equals(oid) == {"$in": [oid]}


@pytest.mark.parametrize("refuse_missing", [False, True])
def test_deleting_a_file_document_that_is_not_there_is_fine(refuse_missing):
    files = FilesStandIn(refuse_missing=refuse_missing)
    mongo_compat.delete_file_document(files, ObjectId())


@pytest.mark.parametrize("refuse_missing", [False, True])
def test_a_file_document_that_is_there_is_deleted(refuse_missing):
    oid, other = ObjectId(), ObjectId()
    files = FilesStandIn({oid, other}, refuse_missing=refuse_missing)
    mongo_compat.delete_file_document(files, oid)
    assert files.ids == {other}


def test_a_failed_delete_of_a_document_still_there_is_raised():
    oid = ObjectId()
    with pytest.raises(pymongo.errors.OperationFailure):
        mongo_compat.delete_file_document(FilesStandIn({oid}, refuse_all=True), oid)
